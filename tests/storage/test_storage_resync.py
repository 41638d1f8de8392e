"""Failover and resync on an in-process cluster: a replica stops, writes go on without it, it comes
back, its predecessor syncs it, and every replica ends up byte-identical."""

from __future__ import annotations

import trio
from crc32c import crc32c
from storage_cluster import CHUNK_SIZE, Cluster, key, payload, running_cluster

from storage.store.interface import ChunkId
from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import LocalTargetState
from threefs.wire.storage import UpdateType

FAILOVER_TIMEOUT_S = 1.0  # mgmtd fails a silent node after this


async def assert_identical(cluster: Cluster, target_ids: list[int], expected: dict[int, bytes]) -> None:
    """Every target holds exactly the chunks of ``expected`` (index -> bytes), committed, with
    the same versions and checksums everywhere, and reads them back."""
    dumps = {}
    for target_id in target_ids:
        metas = await cluster.dump(target_id)
        dumps[target_id] = [(m.chunk.index, m.commit_version, m.length, m.crc32c, m.dirty) for m in metas]
        for index, data in expected.items():
            result, read = await cluster.read(target_id, key(index))
            assert result.code == 0, (target_id, index, result.message)
            assert read == data, (target_id, index)
    first = dumps[target_ids[0]]
    assert [(i, length, crc, dirty) for i, _, length, crc, dirty in first] == [
        (i, len(d), crc32c(d), False) for i, d in sorted(expected.items())
    ]
    for target_id in target_ids[1:]:
        assert dumps[target_id] == first, target_id


async def test_a_stopped_replica_is_resynced_and_agrees():
    async with running_cluster(heartbeat_timeout_s=FAILOVER_TIMEOUT_S) as cluster:
        expected = {}
        for index in range(6):
            expected[index] = payload(index)
            await cluster.write(key(index), expected[index])

        cluster.stop_node(2)  # the middle replica goes away; its chunks stay in its store
        # Writes stall until mgmtd fails node 2 (heartbeat timeout), then go head -> tail.
        for index in (0, 6):
            expected[index] = payload(100 + index)
            await cluster.write_retrying(key(index), expected[index])
        await cluster.wait_chain([(101, "SERVING"), (103, "SERVING"), (102, "OFFLINE")])
        for index in (1, 7):
            expected[index] = payload(200 + index)
            await cluster.write_retrying(key(index), expected[index])
        # Something only the stopped replica has: a chunk the others will remove.
        cluster.store(102).prepare(
            ChunkId(7, 50), update_version=1, chain_version=1, chunk_size=CHUNK_SIZE, offset=0, data=b"junk"
        )
        cluster.store(102).commit(ChunkId(7, 50), 1)
        request = cluster.update_request(key(2), update_type=UpdateType.REMOVE)
        await cluster.update(request)
        del expected[2]

        # Tiny metadata pages, so the sync pages through the syncing target's chunks.
        cluster.nodes[3].app.resyncer.meta_page_chunks = 2
        await cluster.start_node(2)
        # Back ONLINE -> WAITING -> SYNCING (writes keep flowing) -> synced -> SERVING.
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_writing, cluster, expected, stop)
            await cluster.wait_chain([(101, "SERVING"), (103, "SERVING"), (102, "SERVING")])
            stop.set()
        await cluster.sync_routing()
        await assert_identical(cluster, [101, 103, 102], expected)
        targets = await cluster.targets()
        assert targets[102].local_state == LocalTargetState.UPTODATE
        resyncer = cluster.nodes[3].app.resyncer
        assert resyncer.completed >= 1
        metrics = cluster.nodes[3].app.state.metrics.render().decode()
        assert 'threefs_storage_resyncs_total{result="done"}' in metrics


async def keep_writing(cluster: Cluster, expected: dict[int, bytes], stop: trio.Event) -> None:
    """Overwrite chunks 3 and 8 again and again until ``stop`` (acknowledged writes go into
    ``expected``; a write is never abandoned halfway)."""
    seed = 1000
    while not stop.is_set():
        for index in (3, 8):
            seed += 1
            data = payload(seed)
            await cluster.write_retrying(key(index), data)
            expected[index] = data
        await trio.sleep(0.01)


async def test_a_syncing_replica_gets_whole_chunks_and_is_not_read():
    async with running_cluster() as cluster:
        for index in range(4):
            await cluster.write(key(index), payload(index))
        await cluster.mgmtd.offline_target(103)  # an admin takes the tail out
        await cluster.wait_chain([(101, "SERVING"), (102, "SERVING"), (103, "OFFLINE")])
        await cluster.sync_routing()
        await cluster.write(key(0), b"missed by 103", offset=10)
        await cluster.update(cluster.update_request(key(3), update_type=UpdateType.REMOVE))

        for index in (1, 2):  # 103 went its own way meanwhile: versions ahead, other content
            for version in range(2, 6):
                chunk_id = ChunkId(7, index)
                cluster.store(103).prepare(
                    chunk_id,
                    update_version=version,
                    chain_version=1,
                    chunk_size=CHUNK_SIZE,
                    offset=0,
                    data=b"?",
                )
                cluster.store(103).commit(chunk_id, version)

        resyncer = cluster.nodes[2].app.resyncer
        resyncer.due = list  # hold the sync back: 103 stays SYNCING
        await cluster.mgmtd.update_chain(1, 103, add=True)
        await cluster.wait_chain([(101, "SERVING"), (102, "SERVING"), (103, "SYNCING")])
        await cluster.sync_routing()
        # An incremental write reaches the syncing replica as the whole chunk.
        await cluster.write(key(1), b"while syncing", offset=100)
        expected_1 = payload(1)[:100] + b"while syncing" + payload(1)[113:]
        synced_meta = {m.chunk.index: m for m in await cluster.dump(103)}[1]
        assert (synced_meta.length, synced_meta.crc32c) == (CHUNK_SIZE, crc32c(expected_1))
        result, _ = await cluster.read(103, key(1))
        assert result.code == Code.STORAGE_SYNCING

        del resyncer.due  # back to the class's method: the sync runs
        await cluster.wait_chain([(101, "SERVING"), (102, "SERVING"), (103, "SERVING")])
        await cluster.sync_routing()
        expected = {0: payload(0)[:10] + b"missed by 103" + payload(0)[23:], 1: expected_1, 2: payload(2)}
        await assert_identical(cluster, [101, 102, 103], expected)


async def test_a_failing_disk_takes_its_target_out_and_writes_go_on():
    async with running_cluster(heartbeat_timeout_s=FAILOVER_TIMEOUT_S) as cluster:
        await cluster.write(key(0), b"before")

        def broken(*args, **kwargs):
            raise ThreeFSError(Code.STORAGE_IO_ERROR, "disk on fire")

        cluster.store(102).prepare = broken  # the middle replica's disk fails
        await cluster.write_retrying(key(0), b"after")  # stalls until mgmtd drops 102
        chain = await cluster.wait_chain([(101, "SERVING"), (103, "SERVING"), (102, "OFFLINE")])
        assert chain.chain_version > 1
        assert (await cluster.targets())[102].local_state == LocalTargetState.OFFLINE
        result, data = await cluster.read(103, key(0))
        assert data == b"aftere"  # "after" written over "before"
        result, _ = await cluster.read(102, key(0))
        assert result.code == Code.STORAGE_TARGET_OFFLINE


async def test_the_head_dies_and_returns_at_the_tail():
    async with running_cluster(heartbeat_timeout_s=FAILOVER_TIMEOUT_S) as cluster:
        expected = {index: payload(index) for index in range(3)}
        for index, data in expected.items():
            await cluster.write(key(index), data)
        cluster.stop_node(1)
        expected[0] = payload(50)
        await cluster.write_retrying(key(0), expected[0])  # the client finds the new head
        await cluster.wait_chain([(102, "SERVING"), (103, "SERVING"), (101, "OFFLINE")])
        await cluster.start_node(1)
        await cluster.wait_chain([(102, "SERVING"), (103, "SERVING"), (101, "SERVING")])
        await cluster.sync_routing()
        await assert_identical(cluster, [102, 103, 101], expected)
