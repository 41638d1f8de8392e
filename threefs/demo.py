"""`make run`: a short demo of what threefs has so far (the cluster, mount and CLI come later).

It starts an authenticated RPC server as a separate process on loopback, calls it (a 4 MiB
payload checked end to end, an error carried back with its code, a refused wrong secret, a
deadline), then runs concurrent transactions on the embedded SQLite KV engine under the data
directory and checks that no increment was lost. Exits non-zero if any check fails.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import trio

from threefs.errors import Code, ThreeFSError
from threefs.kv import open_engine, run_transaction
from threefs.rpc import RpcClient, RpcServer
from threefs.rpc.debug import DebugService, DebugStub
from threefs.wire.debug import EchoRequest, FailRequest, SleepRequest

SECRET_ENV = "THREEFS_DEMO_SECRET"


async def _serve(port_file: Path) -> None:
    server = RpcServer(os.environb[SECRET_ENV.encode()], [DebugService()])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        await trio.Path(port_file).write_text(str(port))


def _start_server(data_dir: Path, secret: bytes) -> tuple[subprocess.Popen, int]:
    port_file = data_dir / "rpc.port"
    port_file.unlink(missing_ok=True)
    env = dict(os.environ, **{SECRET_ENV: secret.decode()})
    cmd = [sys.executable, "-m", "threefs.demo", "serve", "--port-file", str(port_file)]
    process = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 20
    while not port_file.exists() or not port_file.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit("demo: the RPC server process did not start")
        time.sleep(0.05)
    return process, int(port_file.read_text())


async def _rpc_demo(address: str, secret: bytes) -> None:
    async with RpcClient(secret) as client:
        stub = DebugStub(client, address)
        blob = secrets.token_bytes(4 << 20)
        started = time.perf_counter()
        reply, payload = await stub.echo(EchoRequest(text="hello", number=42), payload=blob)
        elapsed = time.perf_counter() - started
        same = hashlib.sha256(payload).digest() == hashlib.sha256(blob).digest()
        _check(same and reply.payload_bytes == len(blob), "4 MiB echo came back intact")
        print(f"  echo: {reply.text!r}, 4 MiB round trip in {elapsed * 1000:.1f} ms, sha256 matches")
        try:
            await stub.fail(FailRequest(code=int(Code.META_NOT_EMPTY), message="/data is not empty"))
        except ThreeFSError as exc:
            _check(exc.code is Code.META_NOT_EMPTY, "error code crossed the wire")
            print(f"  remote error raised here as: {exc}")
        try:
            await stub.sleep(SleepRequest(seconds=5), timeout_s=0.2)
        except ThreeFSError as exc:
            _check(exc.code is Code.RPC_DEADLINE_EXCEEDED, "deadline enforced")
            print(f"  a 5 s call with a 0.2 s deadline: {exc.code.name}")
    async with RpcClient(b"not-the-cluster-secret") as intruder:
        try:
            await DebugStub(intruder, address).echo(EchoRequest(text="let me in"))
            _check(False, "a wrong secret must be refused")
        except ThreeFSError as exc:
            _check(exc.code is Code.RPC_AUTH_FAILED, "wrong secret refused")
            print(f"  a client with the wrong secret: {exc.code.name}")


def _kv_demo(data_dir: Path) -> None:
    engine = open_engine(f"sqlite:///{data_dir.resolve() / 'kv.db'}")
    key = b"CONFdemo-counter"
    run_transaction(engine, lambda txn: txn.set(key, b"0"))

    def bump(txn):
        txn.set(key, str(int(txn.get(key)) + 1).encode())

    def worker() -> None:
        for _ in range(50):
            run_transaction(engine, bump)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    total = int(run_transaction(engine, lambda txn: txn.get(key), read_only=True))
    engine.close()
    _check(total == 400, f"8 threads x 50 increments gave {total}, expected 400")
    print(f"  8 threads x 50 read-modify-write transactions: total {total} ({400 / elapsed:.0f} txn/s)")


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"demo: FAILED: {what}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="threefs demo")
    parser.add_argument("mode", nargs="?", default="demo", choices=["demo", "serve"])
    parser.add_argument("--data-dir", default=".threefs-demo", type=Path)
    parser.add_argument("--port-file", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"    [{args.mode} log] %(name)s: %(message)s")
    if args.mode == "serve":
        trio.run(_serve, args.port_file)
        return 0
    args.data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(16).encode()
    print(f"threefs demo (data under {args.data_dir}/)")
    print("RPC: authenticated server in its own process")
    process, port = _start_server(args.data_dir, secret)
    try:
        trio.run(_rpc_demo, f"127.0.0.1:{port}", secret)
    finally:
        process.terminate()
        process.wait(timeout=10)
    print("KV: embedded SQLite engine, concurrent transactions")
    _kv_demo(args.data_dir)
    print("demo: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
