"""Real processes for the storage integration tests (imported by them): a ``threefs-mgmtd`` and
``threefs-storage`` nodes on loopback with short heartbeat settings, and a small client that
writes through the chain head (retrying with the same tag until acknowledged) and reads back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from crc32c import crc32c

from client.mgmtd import MgmtdClient
from client.routing import RoutingCache
from threefs.errors import ThreeFSError
from threefs.rpc import RpcClient
from threefs.wire import mgmtd as mwire
from threefs.wire import storage as wire

SECRET = "storage-process-secret"
CLUSTER = "storage-proc"
CHUNK_SIZE = 64 << 10
ROOT = Path(__file__).resolve().parents[2]


class Process:
    """A child process that prints ``<kind> <id> listening on HOST:PORT`` once it serves."""

    def __init__(self, kind: str, node_id: int, argv: list[str], log_path: Path) -> None:
        self.kind = kind
        self.node_id = node_id
        self.argv = argv
        self.log_path = log_path
        self.process: trio.Process | None = None
        self.address = ""

    async def start(self, timeout_s: float = 30.0) -> None:
        env = dict(os.environ, THREEFS_CLUSTER_SECRET=SECRET)
        with self.log_path.open("ab") as log_file:
            self.process = await trio.lowlevel.open_process(
                self.argv, stdout=subprocess.PIPE, stderr=log_file, cwd=ROOT, env=env
            )
        line = b""
        with trio.move_on_after(timeout_s):
            while not line.endswith(b"\n"):
                chunk = await self.process.stdout.receive_some(1)
                if not chunk:
                    break
                line += chunk
        expected = f"{self.kind} {self.node_id} listening on "
        if not line.decode().startswith(expected):
            pytest.fail(f"{self.kind} {self.node_id} printed {line!r}; log:\n{self.log_path.read_text()}")
        self.address = line.decode().strip().rsplit(" ", 1)[1]

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> int | None:
        """SIGTERM and wait (SIGKILL after 10 s); returns the exit code."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            with trio.move_on_after(10):
                await self.process.wait()
            self.kill()
        await self.process.wait()
        return self.process.returncode


def mgmtd_process(tmp_path: Path) -> Process:
    config = tmp_path / "mgmtd.toml"
    config.write_text(
        f'cluster_id = "{CLUSTER}"\nnode_id = 1\nlisten_port = 0\nkv_url = "sqlite:///{tmp_path}/mgmtd.db"\n'
        "lease_s = 3.0\nheartbeat_interval_s = 0.2\nheartbeat_timeout_s = 1.5\nupdater_interval_s = 0.1\n"
        "chain_grace_s = 2.0\n"
    )
    argv = [sys.executable, "-m", "mgmtd.main", "--config", str(config)]
    return Process("mgmtd", 1, argv, tmp_path / "mgmtd.log")


def storage_process(tmp_path: Path, node_id: int, mgmtd_address: str) -> Process:
    config = tmp_path / f"storage{node_id}.toml"
    config.write_text(
        f'cluster_id = "{CLUSTER}"\nnode_id = {node_id}\nlisten_port = 0\n'
        f'mgmtd_addresses = ["{mgmtd_address}"]\ndata_dir = "node{node_id}"\nfsync = false\n'
        "routing_refresh_s = 0.5\nresync_interval_s = 0.2\nupdate_timeout_s = 5.0\n"
        f"[[targets]]\ntarget_id = {100 + node_id}\n"
    )
    argv = [sys.executable, "-m", "storage.main", "--config", str(config)]
    return Process("storage", node_id, argv, tmp_path / f"storage{node_id}.log")


def content(chunk: int, generation: int) -> bytes:
    """A chunk's bytes for one generation of writes (distinct for every pair)."""
    return (chunk * 1_000_003 + generation).to_bytes(8, "little") * (CHUNK_SIZE // 8)


class ProcessClient:
    """Writes through the chain head and reads replicas, over its own RPC client."""

    def __init__(self, rpc: RpcClient, mgmtd_address: str) -> None:
        self.rpc = rpc
        self.mgmtd = MgmtdClient([mgmtd_address], rpc=rpc)
        self.routing = RoutingCache(self.mgmtd)
        self.seq = 0
        self.retries = 0

    async def create_chain(self, node_ids: list[int], timeout_s: float = 20.0) -> None:
        """Declare targets ``100 + id``, wait for their nodes to report them, chain them."""
        targets = [mwire.TargetInfo(target_id=100 + n, node_id=n) for n in node_ids]
        await self.mgmtd.create_targets(targets)
        await self.wait(
            lambda ts, cs: all(ts[100 + n].local_state.name == "ONLINE" for n in node_ids), timeout_s
        )
        await self.mgmtd.create_chains([mwire.ChainSpec(chain_id=1, target_ids=[100 + n for n in node_ids])])
        await self.wait_all_serving(timeout_s)

    async def wait(self, done, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
        seen = None
        with trio.move_on_after(timeout_s):
            while True:
                targets = {t.target_id: t for t in await self.mgmtd.list_targets()}
                chains = {c.chain_id: c for c in await self.mgmtd.list_chains()}
                seen = (targets, chains)
                if done(targets, chains):
                    await self.routing.refresh()
                    return
                await trio.sleep(0.05)
        pytest.fail(f"cluster never reached the expected state; last {seen}")

    async def wait_all_serving(self, timeout_s: float) -> None:
        def done(targets, chains) -> bool:  # type: ignore[no-untyped-def]
            chain = chains.get(1)
            return chain is not None and all(
                t.public_state.name == "SERVING" and targets[t.target_id].local_state.name == "UPTODATE"
                for t in chain.targets
            )

        await self.wait(done, timeout_s)

    async def write(self, chunk: int, data: bytes, timeout_s: float = 40.0) -> wire.UpdateChunkResponse:
        """Write ``data`` as chunk ``chunk`` of inode 1 until acknowledged (same tag each try)."""
        self.seq += 1
        tag = wire.RequestTag(client_id=b"process-test-cli", channel=0, seq=self.seq)
        with trio.fail_after(timeout_s):
            while True:
                try:
                    if not self.routing.version:
                        await self.routing.refresh()
                    chain = self.routing.chain(1)
                    request = wire.UpdateChunkRequest(
                        tag=tag,
                        chain_id=1,
                        chain_version=chain.chain_version,
                        chunk=wire.ChunkKey(1, chunk),
                        chunk_size=CHUNK_SIZE,
                        update_type=wire.UpdateType.WRITE,
                        length=len(data),
                        crc32c=crc32c(data),
                    )
                    address = self.routing.target_address(self.routing.head(1).target_id)
                    reply, _ = await self.rpc.call(
                        address, wire.UPDATE_CHUNK, request, payload=data, timeout_s=8
                    )
                    return reply
                except ThreeFSError as exc:
                    if not exc.retryable:
                        raise
                    self.retries += 1
                    await trio.sleep(0.05)
                    try:
                        await self.routing.refresh()
                    except ThreeFSError:
                        pass

    async def read(self, target_id: int, chunk: int) -> tuple[wire.ReadResult, bytes]:
        chain = self.routing.chain(1)
        io = wire.ReadIO(
            chain_id=1,
            chain_version=chain.chain_version,
            target_id=target_id,
            chunk=wire.ChunkKey(1, chunk),
            offset=0,
            length=CHUNK_SIZE,
        )
        address = self.routing.target_address(target_id)
        reply, data = await self.rpc.call(
            address, wire.BATCH_READ, wire.BatchReadRequest(reads=[io]), timeout_s=10
        )
        return reply.results[0], bytes(data)

    async def dump(self, target_id: int) -> list[wire.ChunkMetaInfo]:
        address = self.routing.target_address(target_id)
        request = wire.DumpChunkMetaRequest(target_id=target_id)
        reply, _ = await self.rpc.call(address, wire.DUMP_CHUNK_META, request, timeout_s=10)
        return reply.chunks
