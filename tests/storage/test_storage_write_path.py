"""The CRAQ write and read paths on an in-process cluster: one mgmtd, three storage nodes with
in-memory stores, chain 1 = [101, 102, 103]."""

from __future__ import annotations

import pytest
import trio
from crc32c import crc32c
from storage_cluster import CHUNK_SIZE, Cluster, key, payload, running_cluster

from storage.store.interface import ChunkId, ChunkState
from threefs.errors import Code, ThreeFSError
from threefs.wire import storage as wire

TARGETS = (101, 102, 103)


async def replicas_agree(cluster: Cluster, chunk: wire.ChunkKey, expected: bytes) -> None:
    """Every replica holds ``expected`` committed, with the same version and checksum."""
    metas = []
    for target_id in TARGETS:
        meta = {m.chunk: m for m in await cluster.dump(target_id)}[chunk]
        metas.append((meta.commit_version, meta.length, meta.crc32c, meta.dirty))
        result, data = await cluster.read(target_id, chunk)
        assert result.code == 0, result.message
        assert data == expected, f"target {target_id}"
        assert result.crc32c == crc32c(expected)
    assert metas == [metas[0]] * len(TARGETS)
    assert metas[0][1:] == (len(expected), crc32c(expected), False)


async def test_a_write_goes_head_to_tail_and_replicas_agree():
    async with running_cluster() as cluster:
        data = payload(1)
        reply = await cluster.write(key(0), data)
        assert (reply.commit_version, reply.length, reply.crc32c) == (1, CHUNK_SIZE, crc32c(data))
        await replicas_agree(cluster, key(0), data)

        patch = b"patch" * 100
        reply = await cluster.write(key(0), patch, offset=1000)
        expected = data[:1000] + patch + data[1000 + len(patch) :]
        assert reply.commit_version == 2
        await replicas_agree(cluster, key(0), expected)

        appended = await cluster.write(key(1), b"tail bytes", offset=100)  # a gap reads as zeros
        assert appended.length == 110
        await replicas_agree(cluster, key(1), bytes(100) + b"tail bytes")
        result, data = await cluster.read(102, key(1), offset=95, length=20)
        assert data == bytes(5) + b"tail bytes"
        result, data = await cluster.read(103, key(9))  # a missing chunk reads as a hole
        assert (result.code, data) == (0, b"")


async def test_stale_chain_version_and_not_head_are_refused():
    async with running_cluster() as cluster:
        await cluster.write(key(0), b"v1")
        with pytest.raises(ThreeFSError) as stale:
            await cluster.write(key(0), b"x", chain_version=cluster.routing.chain(1).chain_version + 5)
        assert stale.value.code == Code.STORAGE_STALE_CHAIN_VERSION

        # A chain change (new head order) makes version 1 stale everywhere.
        await cluster.mgmtd.set_preferred_order(1, [102, 101, 103])
        await cluster.sync_routing()
        with pytest.raises(ThreeFSError) as old:
            await cluster.update(
                cluster.update_request(key(0), b"x", chain_version=1), b"x", address=cluster.node_address(102)
            )
        assert old.value.code == Code.STORAGE_STALE_CHAIN_VERSION
        assert cluster.routing.head(1).target_id == 102
        result, _ = await cluster.read(101, key(0))
        assert result.code == 0
        stale_read = wire.ReadIO(chain_id=1, chain_version=1, target_id=101, chunk=key(0), offset=0, length=2)
        reply, _ = await cluster.rpc.call(
            cluster.node_address(101), wire.BATCH_READ, wire.BatchReadRequest(reads=[stale_read])
        )
        assert reply.results[0].code == Code.STORAGE_STALE_CHAIN_VERSION

        with pytest.raises(ThreeFSError) as not_head:  # 101 is now the middle
            await cluster.update(
                cluster.update_request(key(0), b"x"), b"x", address=cluster.node_address(101)
            )
        assert not_head.value.code == Code.STORAGE_NOT_HEAD
        reply = await cluster.write(key(0), b"v2")  # the new head takes it
        assert reply.commit_version == 2
        await replicas_agree(cluster, key(0), b"v2")


async def test_bad_payloads_are_refused_and_change_nothing():
    async with running_cluster() as cluster:
        data = b"checked"
        with pytest.raises(ThreeFSError) as bad_crc:
            await cluster.update(cluster.update_request(key(0), data, crc=crc32c(data) ^ 1), data)
        assert bad_crc.value.code == Code.STORAGE_CHECKSUM_MISMATCH
        with pytest.raises(ThreeFSError) as outside:
            await cluster.write(key(0), b"xx", offset=CHUNK_SIZE - 1)
        assert outside.value.code == Code.STORAGE_BAD_OFFSET
        request = cluster.update_request(key(0), data)
        with pytest.raises(ThreeFSError) as short:
            await cluster.update(request, data[:-1])
        assert short.value.code in (Code.INVALID_ARG, Code.STORAGE_CHECKSUM_MISMATCH)
        for target_id in TARGETS:
            assert await cluster.dump(target_id) == []


async def test_duplicates_get_the_first_answer():
    async with running_cluster() as cluster:
        tag = cluster.tag()
        first = await cluster.write(key(0), b"first", tag=tag)
        await cluster.write(key(0), b"second")
        again = await cluster.write(key(0), b"first", tag=tag)  # a late retry of the first write
        assert again == first
        meta = {m.chunk: m for m in await cluster.dump(101)}[key(0)]
        assert meta.commit_version == 2  # the retry did not run again
        result, data = await cluster.read(103, key(0))
        assert data == b"second"

        # Duplicates in flight at once: one runs, the others wait for its answer.
        tag = cluster.tag()
        replies = [None] * 4

        async def send(index: int) -> None:
            replies[index] = await cluster.write(key(1), b"once", tag=tag)

        async with trio.open_nursery() as nursery:
            for index in range(4):
                nursery.start_soon(send, index)
        assert all(reply == replies[0] for reply in replies)
        assert replies[0].commit_version == 1


async def test_concurrent_writes_to_one_chunk_are_serialized():
    async with running_cluster() as cluster:
        pieces = 16
        size = CHUNK_SIZE // pieces
        replies = {}

        async def write_piece(index: int) -> None:
            replies[index] = await cluster.write(key(0), bytes([index + 1]) * size, offset=index * size)

        async with trio.open_nursery() as nursery:
            for index in range(pieces):
                nursery.start_soon(write_piece, index)
        assert sorted(r.commit_version for r in replies.values()) == list(range(1, pieces + 1))
        expected = b"".join(bytes([index + 1]) * size for index in range(pieces))
        await replicas_agree(cluster, key(0), expected)
        assert cluster.nodes[1].app.state.locks.waits > 0


async def test_reads_answer_committed_data_and_not_committed_off_the_tail():
    async with running_cluster() as cluster:
        await cluster.write(key(0), b"committed")
        # An update in flight: prepared (DIRTY) on every replica but committed nowhere.
        for target_id in TARGETS:
            meta = cluster.store(target_id).prepare(
                ChunkId(7, 0),
                update_version=2,
                chain_version=1,
                chunk_size=CHUNK_SIZE,
                offset=0,
                data=b"pending!!",
            )
            assert meta.state == ChunkState.DIRTY
        for target_id in (101, 102):
            result, data = await cluster.read(target_id, key(0))
            assert result.code == Code.STORAGE_CHUNK_NOT_COMMITTED
            assert data == b""
        result, data = await cluster.read(103, key(0))  # the tail answers its committed version
        assert (result.code, data, result.commit_version) == (0, b"committed", 1)

        # The head sees a leftover: the next write goes whole, at a version past it, and settles it.
        reply = await cluster.write(key(0), b"X", offset=2)
        assert reply.commit_version == 3
        await replicas_agree(cluster, key(0), b"coXmitted")


async def test_truncate_remove_and_query_last_chunk():
    async with running_cluster() as cluster:
        for index in range(4):
            await cluster.write(key(index), payload(index))
        await cluster.update(
            cluster.update_request(key(3), update_type=wire.UpdateType.TRUNCATE, truncate_to=1000)
        )
        await replicas_agree(cluster, key(3), payload(3)[:1000])
        await cluster.update(
            cluster.update_request(key(3), update_type=wire.UpdateType.TRUNCATE, truncate_to=1500)
        )
        await replicas_agree(cluster, key(3), payload(3)[:1000] + bytes(500))

        async def last(target_id: int) -> wire.QueryLastChunkResponse:
            request = wire.QueryLastChunkRequest(
                chain_id=1, chain_version=cluster.routing.chain(1).chain_version, target_id=target_id, inode=7
            )
            reply, _ = await cluster.rpc.call(cluster.node_address(target_id), wire.QUERY_LAST_CHUNK, request)
            return reply

        assert await last(103) == wire.QueryLastChunkResponse(
            found=True, last_index=3, last_length=1500, chunk_count=4
        )
        removed = await cluster.update(cluster.update_request(key(1), update_type=wire.UpdateType.REMOVE))
        assert (removed.length, removed.crc32c) == (0, 0)
        for target_id in TARGETS:
            assert [m.chunk.index for m in await cluster.dump(target_id)] == [0, 2, 3]

        request = wire.RemoveChunksRequest(
            tag=cluster.tag(),
            chain_id=1,
            chain_version=cluster.routing.chain(1).chain_version,
            inode=7,
            begin_index=2,
        )
        reply, _ = await cluster.rpc.call(cluster.head_address(), wire.REMOVE_CHUNKS, request)
        assert reply.removed == 2
        again, _ = await cluster.rpc.call(cluster.head_address(), wire.REMOVE_CHUNKS, request)  # a retry
        assert again == reply
        for target_id in TARGETS:
            assert [m.chunk.index for m in await cluster.dump(target_id)] == [0]
        assert await last(102) == wire.QueryLastChunkResponse(
            found=True, last_index=0, last_length=CHUNK_SIZE, chunk_count=1
        )
        other = wire.QueryLastChunkRequest(
            chain_id=1, chain_version=cluster.routing.chain(1).chain_version, target_id=101, inode=8
        )
        reply, _ = await cluster.rpc.call(cluster.node_address(101), wire.QUERY_LAST_CHUNK, other)
        assert reply.found is False


async def test_a_replica_that_lost_or_garbled_a_chunk_gets_it_whole():
    async with running_cluster() as cluster:
        for index in range(3):
            await cluster.write(key(index), payload(index))
        tail = cluster.store(103)
        tail.remove(ChunkId(7, 0))  # lost: the increment cannot apply
        tail.prepare(
            ChunkId(7, 1), update_version=2, chain_version=1, chunk_size=CHUNK_SIZE, offset=0, data=b"?"
        )
        tail.commit(ChunkId(7, 1), 2)  # ahead, with content nobody else has
        tail.remove(ChunkId(7, 2))
        tail.prepare(
            ChunkId(7, 2), update_version=1, chain_version=1, chunk_size=CHUNK_SIZE, offset=0, data=b"!"
        )
        tail.commit(ChunkId(7, 2), 1)  # same version, other content: the increment applies wrongly

        for index in range(3):
            await cluster.write(key(index), b"fixed", offset=8)
            await replicas_agree(cluster, key(index), payload(index)[:8] + b"fixed" + payload(index)[13:])


async def test_a_whole_chunk_read_carries_the_checksum_stored_at_write_time():
    """Bit rot on a replica's disk is caught: a whole-chunk read answers the checksum recorded when
    the chunk was written, not one computed from whatever the disk returns now."""
    async with running_cluster() as cluster:
        await cluster.write(key(0), b"good data")
        result, data = await cluster.read(103, key(0))
        assert (result.code, data, result.crc32c) == (0, b"good data", crc32c(b"good data"))
        cluster.store(103)._chunks[ChunkId(7, 0)].data = b"bad! data"  # the disk rots
        result, data = await cluster.read(103, key(0))
        assert data == b"bad! data" and result.crc32c == crc32c(b"good data")  # the client will see it
        result, data = await cluster.read(103, key(0), offset=1, length=4)  # partial: computed
        assert (data, result.crc32c) == (b"ad! ", crc32c(b"ad! "))
