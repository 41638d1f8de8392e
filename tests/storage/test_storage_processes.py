"""Real ``threefs-storage`` processes next to a real ``threefs-mgmtd``: SIGKILL a node in the middle
of a stream of writes, restart it, and check by content hash that every acknowledged write reads
back, and (with a chain of three) that all replicas end up byte-identical."""

from __future__ import annotations

import hashlib

import pytest
import trio
from storage_processes import CHUNK_SIZE, ProcessClient, content, mgmtd_process, storage_process

from threefs.rpc import RpcClient

pytestmark = pytest.mark.slow

SECRET = "storage-process-secret"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Writer:
    """Writes chunks ``0..chunks-1`` round after round (generation = round); each write is
    retried until acknowledged, then recorded as the chunk's expected content hash."""

    def __init__(self, client: ProcessClient, chunks: int) -> None:
        self.client = client
        self.chunks = chunks
        self.expected: dict[int, str] = {}
        self.acked = 0
        self.stop = trio.Event()
        self._progress = trio.Event()

    async def run(self, first: int, step: int) -> None:
        generation = 0
        while not self.stop.is_set():
            generation += 1
            for chunk in range(first, self.chunks, step):
                data = content(chunk, generation)
                await self.client.write(chunk, data)
                self.expected[chunk] = digest(data)
                self.acked += 1
                self._progress.set()
                self._progress = trio.Event()

    async def until_acked(self, count: int, timeout_s: float = 40.0) -> None:
        with trio.fail_after(timeout_s):
            while self.acked < count:
                await self._progress.wait()


async def check_reads(client: ProcessClient, target_id: int, expected: dict[int, str]) -> None:
    for chunk, want in sorted(expected.items()):
        result, data = await client.read(target_id, chunk)
        assert result.code == 0, (target_id, chunk, result.message)
        assert len(data) == CHUNK_SIZE and digest(data) == want, (target_id, chunk)


async def test_a_killed_storage_node_keeps_every_acknowledged_write(tmp_path):
    mgmtd = mgmtd_process(tmp_path)
    storage = None
    try:
        await mgmtd.start()
        storage = storage_process(tmp_path, 1, mgmtd.address)
        await storage.start()
        async with RpcClient(SECRET) as rpc:
            client = ProcessClient(rpc, mgmtd.address)
            await client.create_chain([1])
            writer = Writer(client, chunks=24)
            async with trio.open_nursery() as nursery:
                for first in range(4):  # four writers in flight: the kill lands mid-update
                    nursery.start_soon(writer.run, first, 4)
                await writer.until_acked(40)
                storage.kill()
                await storage.process.wait()
                acked_at_kill = writer.acked
                await storage.start()  # same config and data directory
                await writer.until_acked(acked_at_kill + 40)
                writer.stop.set()
            await client.wait_all_serving(20)
            await check_reads(client, 101, writer.expected)
            assert client.retries > 0  # the kill was felt
    finally:
        if storage is not None:
            assert await storage.stop() == 0
        await mgmtd.stop()


@pytest.mark.parametrize("victim", [2, 1], ids=["middle", "head"])
async def test_a_chain_of_three_survives_a_killed_node_and_resyncs_it(tmp_path, victim):
    mgmtd = mgmtd_process(tmp_path)
    nodes = {}
    try:
        await mgmtd.start()
        nodes = {n: storage_process(tmp_path, n, mgmtd.address) for n in (1, 2, 3)}
        async with trio.open_nursery() as nursery:
            for node in nodes.values():
                nursery.start_soon(node.start)
        async with RpcClient(SECRET) as rpc:
            client = ProcessClient(rpc, mgmtd.address)
            await client.create_chain([1, 2, 3])
            writer = Writer(client, chunks=30)
            async with trio.open_nursery() as nursery:
                for first in range(3):
                    nursery.start_soon(writer.run, first, 3)
                await writer.until_acked(30)
                nodes[victim].kill()  # a replica (middle or head) dies in the middle of the stream
                await nodes[victim].process.wait()
                await writer.until_acked(writer.acked + 40)  # the chain goes on without it
                await nodes[victim].start()
                await client.wait_all_serving(40)  # resynced while the writes go on
                await writer.until_acked(writer.acked + 20)
                writer.stop.set()
            await client.routing.refresh()
            chain = client.routing.chain(1)
            assert sorted(t.target_id for t in chain.targets) == [101, 102, 103]
            dumps = {}
            for target_id in (101, 102, 103):
                dumps[target_id] = [
                    (m.chunk, m.commit_version, m.length, m.crc32c, m.dirty)
                    for m in await client.dump(target_id)
                ]
                await check_reads(client, target_id, writer.expected)
            assert len(dumps[101]) == writer.chunks
            assert dumps[101] == dumps[102] == dumps[103]
            assert not any(dirty for *_, dirty in dumps[101])
    finally:
        for node in nodes.values():
            await node.stop()
        await mgmtd.stop()
