"""Meta benchmark: creates, stats, listings and unlinks per second through ``client.meta``
against a real meta server process, with 1 and 8 concurrent clients, on sqlite and postgres,
next to two limits measured in the same run.

Run from the repository root: ``.venv/bin/python bench/meta.py [--seconds S] [--clients 1,8]
[--engines sqlite,postgres]``. For each engine a ``LocalCluster`` starts mgmtd, one storage node
(the root directory's layout names its chain table) and one meta server whose KV engine is a
sqlite file or a throwaway PostgreSQL server (``threefs.testing.postgres``, fsync off). Each
client is its own ``MetaClient`` on its own ``RpcClient`` (its own connection), working in its
own directory: for ``--seconds`` each phase it creates empty files (Mknod), stats them by path
(two components to resolve), lists its directory (pages of 100 entries with attributes), then
unlinks them (until time is up or none is left). GC is delayed past the run.

Limits, each measured with the same number of concurrent clients: ``kv`` is raw KV
transactions/s of the same engine (``bench/kv.py``'s one get + one set per transaction, each
client its own key, a fresh sqlite file or a separate postgres table), the ceiling of any
operation that is one transaction; ``echo`` is the RPC Echo round-trip rate against a server in
another process (``bench/rpc.py``), the ceiling of any operation that is one RPC; ``raw`` is
the round-trip rate of bare trio sockets (one connection per client, one Echo-sized message in
flight on each, no framing, no work) and the CPU its server process used: the floor under any
RPC in Python on this machine. Prints a table, then one JSON line (the last line), also
written to ``--out``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

try:
    import threefs  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

from client.meta import MetaClient
from threefs.kv import open_engine
from threefs.rpc import RpcClient
from threefs.testing.cluster import LocalCluster
from threefs.wire.debug import EchoRequest, EchoResponse
from threefs.wire.meta import Caller, InodeType

ROOT = Caller(uid=0, gid=0, admin=True)
OPS = ("create", "stat", "list", "unlink")
_HERE = Path(__file__).resolve().parent


def _load(name: str):  # type: ignore[no-untyped-def]
    """bench/<name>.py as a module (its helpers measure the limits)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", _HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


# ----------------------------------------------------------------------------- limits


def kv_limit(url: str, clients: int, seconds: float) -> float:
    """Raw get+set transactions/s of the engine at ``url`` with ``clients`` threads."""
    engine = open_engine(url)
    try:
        return _load("kv").bench_engine(engine, clients, seconds, False)[0]
    finally:
        engine.close()


def raw_limit(clients: int, seconds: float) -> tuple[float, float]:
    """Raw trio socket round trips/s with ``clients`` connections, one Echo-sized message in
    flight on each, server in another process; and the CPU cores that server used. The floor
    under any one-RPC operation in Python on this machine: no framing, no work."""
    rpc = _load("rpc")
    request_size, reply_size = rpc._frame_sizes(EchoRequest(text="x", number=1), EchoResponse("x", 1, 0))
    proc, port = rpc._start_server("raw")
    try:
        before = _cpu_seconds(proc.pid)
        done = trio.run(rpc._raw_round_trips, port, seconds, clients, bytes(request_size), 0, reply_size)
        cores = (_cpu_seconds(proc.pid) - before) / seconds
    finally:
        proc.terminate()
        proc.wait()
    return done / seconds, cores


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def echo_limit(clients: int, seconds: float) -> float:
    """RPC Echo round trips/s with ``clients`` callers, server in another process."""
    rpc = _load("rpc")
    request = EchoRequest(text="x", number=1)
    done = rpc._measure("rpc", seconds, lambda port, d: rpc._rpc_clients(port, d, clients, request, b""))
    return done / seconds


# ----------------------------------------------------------------------------- meta


async def measure_meta(cluster: LocalCluster, clients: int, seconds: float, tag: str) -> dict[str, float]:
    """ops/s of each phase with ``clients`` concurrent clients."""
    counts = {op: 0 for op in OPS}
    elapsed = {op: 0.0 for op in OPS}
    files: list[list[bytes]] = [[] for _ in range(clients)]
    async with trio.open_nursery() as nursery:
        metas: list[MetaClient] = []
        for _ in range(clients):
            rpc = RpcClient(cluster.secret)
            await nursery.start(_hold, rpc)
            metas.append(MetaClient(rpc, addresses=cluster.meta_addresses, caller=ROOT))
        directories = [f"/{tag}-{clients}-{index}".encode() for index in range(clients)]
        for meta, directory in zip(metas, directories, strict=True):
            await meta.mkdir(directory)

        async def create(index: int, deadline: float) -> None:
            meta, directory = metas[index], directories[index]
            while trio.current_time() < deadline:
                name = b"%s/f%d" % (directory, len(files[index]))
                await meta.mknod(name, InodeType.FILE)
                files[index].append(name)
                counts["create"] += 1

        async def stat(index: int, deadline: float) -> None:
            meta, rng = metas[index], random.Random(index)
            while trio.current_time() < deadline:
                await meta.stat(rng.choice(files[index]))
                counts["stat"] += 1

        async def listing(index: int, deadline: float) -> None:
            meta, after = metas[index], b""
            while trio.current_time() < deadline:
                page = await meta.list(directories[index], after=after, limit=100, with_attrs=True)
                after = page.entries[-1].name if page.more else b""
                counts["list"] += 1

        async def unlink(index: int, deadline: float) -> None:
            meta = metas[index]
            while files[index] and trio.current_time() < deadline:
                await meta.unlink(files[index].pop())
                counts["unlink"] += 1

        for op, body in zip(OPS, (create, stat, listing, unlink), strict=True):
            started = trio.current_time()
            deadline = started + seconds
            async with trio.open_nursery() as phase:
                for index in range(clients):
                    phase.start_soon(body, index, deadline)
            elapsed[op] = trio.current_time() - started
        nursery.cancel_scope.cancel()
    return {op: counts[op] / elapsed[op] for op in OPS}


async def _hold(rpc: RpcClient, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    async with rpc:
        task_status.started()
        await trio.sleep_forever()


async def run_cluster(directory: Path, url: str, client_counts: list[int], seconds: float) -> dict[int, dict]:
    async with LocalCluster(
        directory, storage_nodes=1, replication=1, meta_servers=1, meta_kv_url=url, gc_delay_s=3600.0
    ) as cluster:
        return {
            clients: await measure_meta(cluster, clients, seconds, f"c{clients}") for clients in client_counts
        }


def bench_engine(
    kind: str, directory: Path, client_counts: list[int], seconds: float, synchronous: str = "FULL"
) -> dict[int, dict]:
    with ExitStack() as stack:
        if kind == "sqlite":
            meta_url = f"sqlite:///{directory}/meta.db?synchronous={synchronous}"
            limit_url = f"sqlite:///{directory}/kv-limit.db?synchronous={synchronous}"
        else:
            from threefs.testing.postgres import PostgresServer

            server = stack.enter_context(PostgresServer())
            meta_url, limit_url = server.dsn, server.dsn + "?table=kv_limit"
        results = trio.run(run_cluster, directory / "cluster", meta_url, client_counts, seconds)
        for clients in client_counts:
            results[clients]["kv"] = kv_limit(limit_url, clients, seconds)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per phase and per limit")
    parser.add_argument("--clients", default="1,8", help="concurrent client counts (default 1,8)")
    parser.add_argument("--engines", default="sqlite,postgres", help="KV engines (default sqlite,postgres)")
    parser.add_argument(
        "--sqlite-synchronous",
        default="FULL",
        choices=["FULL", "NORMAL"],
        help="sqlite's PRAGMA synchronous for meta and its limit (FULL, the default, fsyncs every "
        "commit; NORMAL only at checkpoints: survives a process crash, not a power cut)",
    )
    parser.add_argument(
        "--out", default="bench/results/meta.json", help="where to write the JSON record ('' for nowhere)"
    )
    args = parser.parse_args(argv)
    client_counts = [int(c) for c in args.clients.split(",")]
    engines = [e for e in args.engines.split(",") if e]
    if "postgres" in engines:
        from threefs.testing.postgres import find_postgres_bin

        if find_postgres_bin() is None:
            print("no PostgreSQL binaries: skipping postgres", file=sys.stderr)
            engines.remove("postgres")

    results: dict[str, dict[int, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="threefs-bench-meta-") as tmp:
        for kind in engines:
            (Path(tmp) / kind).mkdir()
            results[kind] = bench_engine(
                kind, Path(tmp) / kind, client_counts, args.seconds, args.sqlite_synchronous
            )
    echo = {clients: echo_limit(clients, args.seconds) for clients in client_counts}
    raw = {clients: raw_limit(clients, args.seconds) for clients in client_counts}

    record: dict[str, object] = {
        "bench": "meta",
        "seconds": args.seconds,
        "cpu_count": os.cpu_count(),
        "sqlite_synchronous": args.sqlite_synchronous,
    }
    print(f"{'benchmark':<30} {'ops/s':>9} {'kv txn/s':>9} {'ratio':>6} {'echo/s':>9} {'ratio':>6}")
    for kind, by_clients in results.items():
        for clients, figures in by_clients.items():
            kv = figures["kv"]
            record[f"{kind}_{clients}_clients_kv_txn_per_s"] = round(kv, 1)
            for op in OPS:
                rate = figures[op]
                key = f"{kind}_{clients}_clients_{op}_per_s"
                record[key] = round(rate, 1)
                record[f"{kind}_{clients}_clients_{op}_ratio_to_kv"] = round(rate / kv, 3)
                record[f"{kind}_{clients}_clients_{op}_ratio_to_echo"] = round(rate / echo[clients], 3)
                label = f"{op}, {kind}, {clients} client(s)"
                print(
                    f"{label:<30} {rate:>9,.0f} {kv:>9,.0f} {rate / kv:>6.2f} "
                    f"{echo[clients]:>9,.0f} {rate / echo[clients]:>6.2f}"
                )
    for clients, rate in echo.items():
        record[f"echo_{clients}_clients_per_s"] = round(rate, 1)
    for clients, (rate, cores) in raw.items():
        record[f"raw_socket_{clients}_clients_per_s"] = round(rate, 1)
        record[f"raw_socket_{clients}_clients_server_cores"] = round(cores, 2)
        print(
            f"raw trio socket round trips, {clients} connection(s): {rate:,.0f}/s, "
            f"server process at {cores:.2f} cores ({cores / rate * 1e6:.0f} us of CPU each)"
        )
    print("(list: calls/s, pages of up to 100 entries with attributes; limits with as many clients)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
