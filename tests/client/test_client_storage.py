"""StorageClient against a fake storage service (real RPC on loopback, in-memory chunks): chunk
splitting and placement, per-node batching, retries and routing refreshes, replica choice,
holes, checksums, truncate/remove/length."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import pytest
import trio
from mgmtd_fake import SECRET, FakeMgmtd, serve_fake, unused_address
from storage_fake import FakeStorage, bump_chain, serve_storage, storage_routing

from client.chunk_io import ChunkRead, RequestTags, batch_reads
from client.config import MgmtdClientConfig, StorageClientConfig
from client.mgmtd import MgmtdClient
from client.routing import RoutingCache
from client.storage import StorageClient
from threefs.errors import Code, ThreeFSError
from threefs.layout import Layout, stripe_positions
from threefs.rpc import RpcClient
from threefs.wire import storage as wire
from threefs.wire.mgmtd import ChainTarget, PublicTargetState
from threefs.wire.storage import ChunkKey

CHUNK = 64 << 10
LAYOUT = Layout(table_id=1, table_version=1, chunk_size=CHUNK, stripe_size=4, base_index=0, seed=7)
FAST = StorageClientConfig(
    request_timeout_s=5.0,
    attempt_timeout_s=2.0,
    max_attempts=5,
    retry_initial_backoff_s=0.001,
    retry_max_backoff_s=0.01,
)


def pattern(length: int, salt: int = 0) -> bytes:
    return bytes((i * 7 + salt + i // 251) % 256 for i in range(length))


@dataclass
class Env:
    mgmtd: FakeMgmtd
    storage: FakeStorage
    client: StorageClient
    rpc: RpcClient
    routing: RoutingCache

    def chain_of(self, index: int) -> int:
        slots = stripe_positions(LAYOUT, 4)
        return [1, 2, 3, 4][slots[index % LAYOUT.stripe_size]]

    def new_client(self, config: StorageClientConfig) -> StorageClient:
        return StorageClient(self.rpc, self.routing, config)


@pytest.fixture
async def env(nursery):
    mgmtd = FakeMgmtd(storage_routing())
    served = await serve_fake(nursery, mgmtd)
    storage = FakeStorage(mgmtd)
    await serve_storage(nursery, storage, SECRET)
    async with RpcClient(SECRET) as rpc:
        mgmtd_client = MgmtdClient([served.address], rpc=rpc, config=MgmtdClientConfig(request_timeout_s=3))
        routing = RoutingCache(mgmtd_client)
        await routing.refresh()
        yield Env(mgmtd, storage, StorageClient(rpc, routing, FAST), rpc, routing)


async def test_write_then_read_round_trips_across_chunks_on_the_layouts_chains(env):
    data = pattern(5 * CHUNK + 1234)
    offset = 1000
    assert await env.client.write(77, LAYOUT, offset, data) == len(data)
    assert await env.client.read(77, LAYOUT, offset, len(data)) == data
    assert await env.client.read(77, LAYOUT, offset + CHUNK - 5, 10) == data[CHUNK - 5 : CHUNK + 5]
    for index in range(6):
        for chain_id in (1, 2, 3, 4):
            held = env.storage.chunk_data(chain_id, 77, index)
            assert (held is not None) == (chain_id == env.chain_of(index)), (index, chain_id)
    assert env.storage.chunk_data(env.chain_of(0), 77, 0) == bytes(offset) + data[: CHUNK - offset]
    writes = env.storage.methods("UpdateChunk")
    assert len(writes) == 6
    assert all(
        node == env.storage.routing.targets[env.storage.chain_replicas(r.chain_id)[0]].node_id
        for node, r in writes
    )


async def test_reads_go_in_one_batch_per_storage_node(env):
    await env.client.write(5, LAYOUT, 0, pattern(8 * CHUNK))
    env.storage.calls.clear()
    assert await env.client.read(5, LAYOUT, 0, 8 * CHUNK) == pattern(8 * CHUNK)
    batches = env.storage.methods("BatchRead")
    nodes = [node for node, _ in batches]
    assert len(nodes) == len(set(nodes)) <= 3
    assert sum(len(request.reads) for _, request in batches) == 8
    for node, request in batches:
        assert all(env.storage.routing.targets[io.target_id].node_id == node for io in request.reads)


async def test_batches_are_cut_at_the_configured_limits(env):
    await env.client.write(5, LAYOUT, 0, pattern(8 * CHUNK))
    client = env.new_client(msgspec.structs.replace(FAST, batch_max_ios=2))
    env.storage.calls.clear()
    assert await client.read(5, LAYOUT, 0, 8 * CHUNK) == pattern(8 * CHUNK)
    sizes = [len(request.reads) for _, request in env.storage.methods("BatchRead")]
    assert sum(sizes) == 8 and max(sizes) <= 2 and len(sizes) >= 4


def test_batch_reads_groups_by_node_in_order_and_cuts_by_bytes():
    def io(n: int, length: int) -> wire.ReadIO:
        return wire.ReadIO(
            chain_id=1, chain_version=1, target_id=1, chunk=ChunkKey(1, n), offset=0, length=length
        )

    reads = [(10, 0, io(0, 400)), (11, 1, io(1, 10)), (10, 2, io(2, 400)), (10, 3, io(3, 400))]
    batches = batch_reads(reads, max_ios=10, max_bytes=1000)
    assert [(node, [key for key, _ in items]) for node, items in batches] == [
        (10, [0, 2]),
        (10, [3]),
        (11, [1]),
    ]
    assert [len(items) for _, items in batch_reads(reads, max_ios=1, max_bytes=1 << 30)] == [1, 1, 1, 1]
    assert batch_reads([(10, 0, io(0, 5000))], max_ios=10, max_bytes=1000)[0][1][0][0] == 0


async def test_holes_and_bytes_past_a_chunk_end_read_as_zeros(env):
    await env.client.write(9, LAYOUT, 0, b"a" * 10)
    await env.client.write(9, LAYOUT, 3 * CHUNK + 5, b"b" * 5)
    got = await env.client.read(9, LAYOUT, 0, 5 * CHUNK)
    expected = bytearray(5 * CHUNK)
    expected[:10] = b"a" * 10
    expected[3 * CHUNK + 5 : 3 * CHUNK + 10] = b"b" * 5
    assert got == bytes(expected)
    assert await env.client.read(12345, LAYOUT, 100, 10) == bytes(10)  # a file with no chunk at all
    chunks = await env.client.read_chunks([ChunkRead(env.chain_of(0), ChunkKey(9, 0), 5, 100)])
    assert bytes(chunks[0]) == b"a" * 5  # the chunk-level API shows the short read


async def test_a_stale_chain_version_refreshes_routing_then_succeeds(env):
    chain = env.chain_of(0)
    bump_chain(env.storage, chain)  # the client still caches the old chain version
    before = env.mgmtd.calls["GetRoutingInfo"]
    await env.client.write(3, LAYOUT, 0, b"fresh")
    attempts = [r for _, r in env.storage.methods("UpdateChunk")]
    assert [r.chain_version for r in attempts] == [2, 3]
    assert attempts[0].tag == attempts[1].tag
    assert env.mgmtd.calls["GetRoutingInfo"] == before + 1
    assert env.client.stats.refreshes == 1
    bump_chain(env.storage, chain)
    assert await env.client.read(3, LAYOUT, 0, 5) == b"fresh"
    assert [r.reads[0].chain_version for _, r in env.storage.methods("BatchRead")] == [3, 4]


async def test_not_head_refreshes_routing_and_goes_to_the_new_head(env):
    chain_id = env.chain_of(0)
    routing = env.storage.routing
    chain = routing.chains[chain_id]
    reordered = msgspec.structs.replace(chain, targets=[*chain.targets[1:], chain.targets[0]])
    env.mgmtd.routing = msgspec.structs.replace(
        routing, chains={**routing.chains, chain_id: reordered}, version=routing.version + 1
    )
    await env.client.write(3, LAYOUT, 0, b"x")
    nodes = [node for node, _ in env.storage.methods("UpdateChunk")]
    head_node = routing.targets[chain.targets[0].target_id].node_id
    new_head_node = routing.targets[chain.targets[1].target_id].node_id
    assert nodes == [head_node, new_head_node]


async def test_a_retry_reuses_its_tag_and_new_updates_get_new_sequence_numbers(env):
    env.storage.failures["UpdateChunk"] = [ThreeFSError(Code.STORAGE_CHUNK_LOCKED)]
    await env.client.write(4, LAYOUT, 0, b"one")
    await env.client.write(4, LAYOUT, 0, b"two")
    tags = [r.tag for _, r in env.storage.methods("UpdateChunk")]
    assert tags[0] == tags[1] and tags[2] != tags[1]
    assert {t.client_id for t in tags} == {env.client.client_id} and len(env.client.client_id) == 16
    assert (tags[2].channel, tags[2].seq) == (tags[0].channel, tags[0].seq + 1)
    assert env.client.stats.retries == 1


def test_concurrent_updates_get_distinct_channels():
    tags = RequestTags(b"c" * 16)
    first, second = tags.take(), tags.take()
    assert first.channel != second.channel and first.seq == second.seq == 1
    tags.give_back(first)
    third = tags.take()
    assert (third.channel, third.seq) == (first.channel, 2)
    with pytest.raises(ThreeFSError):
        RequestTags(b"short")


async def test_non_retryable_errors_surface_at_once(env):
    env.storage.failures["UpdateChunk"] = [ThreeFSError(Code.STORAGE_NO_SPACE, "disk full")]
    with pytest.raises(ThreeFSError) as caught:
        await env.client.write(4, LAYOUT, 0, b"data")
    assert caught.value.code == Code.STORAGE_NO_SPACE and "disk full" in caught.value.message
    assert len(env.storage.methods("UpdateChunk")) == 1
    env.storage.read_codes = [Code.STORAGE_BAD_OFFSET]
    with pytest.raises(ThreeFSError) as caught:
        await env.client.read(4, LAYOUT, 0, 4)
    assert caught.value.code == Code.STORAGE_BAD_OFFSET
    assert len(env.storage.methods("BatchRead")) == 1


async def test_retries_are_bounded(env):
    env.storage.failures["UpdateChunk"] = [ThreeFSError(Code.STORAGE_CHUNK_LOCKED)] * 50
    client = env.new_client(msgspec.structs.replace(FAST, max_attempts=3))
    with pytest.raises(ThreeFSError) as caught:
        await client.write(4, LAYOUT, 0, b"data")
    assert caught.value.code == Code.STORAGE_CHUNK_LOCKED and "after 3 attempts" in caught.value.message
    assert len(env.storage.methods("UpdateChunk")) == 3


async def test_reads_are_spread_round_robin_over_the_serving_replicas(env):
    await env.client.write(6, LAYOUT, 0, b"spread")
    env.storage.calls.clear()
    for _ in range(30):
        assert await env.client.read(6, LAYOUT, 0, 6) == b"spread"
    targets = [r.reads[0].target_id for _, r in env.storage.methods("BatchRead")]
    replicas = env.storage.chain_replicas(env.chain_of(0))
    assert sorted(set(targets)) == sorted(replicas)
    assert all(targets.count(t) == 10 for t in replicas)


async def test_an_uncommitted_chunk_is_read_again_from_the_tail(env):
    await env.client.write(6, LAYOUT, 0, b"tail")
    env.storage.calls.clear()
    env.storage.read_codes = [Code.STORAGE_CHUNK_NOT_COMMITTED]
    assert await env.client.read(6, LAYOUT, 0, 4) == b"tail"
    targets = [r.reads[0].target_id for _, r in env.storage.methods("BatchRead")]
    assert len(targets) == 2 and targets[1] == env.storage.chain_replicas(env.chain_of(0))[-1]


async def test_a_checksum_mismatch_is_retried_elsewhere_then_raised(env):
    await env.client.write(8, LAYOUT, 0, b"checked")
    env.storage.calls.clear()
    env.storage.corrupt_reads = 1
    assert await env.client.read(8, LAYOUT, 0, 7) == b"checked"
    targets = [r.reads[0].target_id for _, r in env.storage.methods("BatchRead")]
    assert len(targets) == 2 and targets[0] != targets[1]
    env.storage.corrupt_reads = 100
    with pytest.raises(ThreeFSError) as caught:
        await env.client.read(8, LAYOUT, 0, 7)
    assert caught.value.code == Code.STORAGE_CHECKSUM_MISMATCH


async def test_an_unreachable_node_sends_reads_to_the_other_replicas(env):
    await env.client.write(8, LAYOUT, 0, pattern(4 * CHUNK))
    routing = env.routing.routing
    dead = msgspec.structs.replace(routing.nodes[10], addresses=[unused_address()])
    env.routing.install(
        msgspec.structs.replace(routing, nodes={**routing.nodes, 10: dead}, version=routing.version + 1)
    )
    for _ in range(3):
        assert await env.client.read(8, LAYOUT, 0, 4 * CHUNK) == pattern(4 * CHUNK)


async def test_in_flight_rpcs_are_bounded(env):
    client = env.new_client(msgspec.structs.replace(FAST, max_in_flight=2))
    env.storage.delay_s = 0.02
    await client.write(2, LAYOUT, 0, pattern(10 * CHUNK))
    assert env.storage.max_in_flight == 2
    env.storage.max_in_flight = 0
    batch = msgspec.structs.replace(FAST, max_in_flight=1, batch_max_ios=1)
    assert await env.new_client(batch).read(2, LAYOUT, 0, 10 * CHUNK) == pattern(10 * CHUNK)
    assert env.storage.max_in_flight == 1


async def test_truncate_cuts_the_last_chunk_and_removes_those_past_it(env):
    await env.client.write(11, LAYOUT, 0, pattern(6 * CHUNK))
    new_length = CHUNK + CHUNK // 2
    await env.client.truncate(11, LAYOUT, 6 * CHUNK, new_length)
    removes = [r for _, r in env.storage.methods("RemoveChunks")]
    assert sorted(r.chain_id for r in removes) == [1, 2, 3, 4]
    assert {(r.inode, r.begin_index, r.end_index) for r in removes} == {(11, 2, 0)}
    assert env.storage.chunk_data(env.chain_of(1), 11, 1) == pattern(6 * CHUNK)[CHUNK:new_length]
    assert all(env.storage.chunk_data(env.chain_of(i), 11, i) is None for i in range(2, 6))
    assert await env.client.file_length_hint(11, LAYOUT) == new_length
    await env.client.truncate(11, LAYOUT, new_length, 10 * CHUNK + 5)  # grow: no removal
    assert len(env.storage.methods("RemoveChunks")) == 4
    assert env.storage.chunk_data(env.chain_of(10), 11, 10) == bytes(5)
    assert await env.client.file_length_hint(11, LAYOUT) == 10 * CHUNK + 5
    await env.client.truncate(11, LAYOUT, 10 * CHUNK + 5, 0)
    assert await env.client.file_length_hint(11, LAYOUT) == 0


async def test_remove_clears_every_chain_of_the_stripe(env):
    await env.client.write(12, LAYOUT, 0, pattern(5 * CHUNK))
    await env.client.write(13, LAYOUT, 0, b"other file")
    assert await env.client.remove(12, LAYOUT) == 5
    assert sorted(r.chain_id for _, r in env.storage.methods("RemoveChunks")) == [1, 2, 3, 4]
    assert await env.client.file_length_hint(12, LAYOUT) == 0
    assert await env.client.read(13, LAYOUT, 0, 10) == b"other file"
    assert await env.client.remove(12, LAYOUT) == 0


async def test_file_length_hint_is_the_end_of_the_last_chunk_over_every_chain(env):
    await env.client.write(14, LAYOUT, 3 * CHUNK + 100, b"z" * 50)
    await env.client.write(14, LAYOUT, 10, b"a")
    assert await env.client.file_length_hint(14, LAYOUT) == 3 * CHUNK + 150
    queried = env.storage.methods("QueryLastChunk")
    assert all(r.target_id == env.storage.chain_replicas(r.chain_id)[-1] for _, r in queried)


async def test_an_unknown_table_version_is_looked_up_once_then_refused(env):
    before = env.mgmtd.calls["GetRoutingInfo"]
    with pytest.raises(ThreeFSError) as caught:
        await env.client.write(1, Layout(table_id=1, table_version=9, chunk_size=CHUNK), 0, b"x")
    assert caught.value.code == Code.MGMTD_TABLE_NOT_FOUND
    assert env.mgmtd.calls["GetRoutingInfo"] == before + 1


async def test_a_stripe_wider_than_the_table_is_refused(env):
    with pytest.raises(ThreeFSError) as caught:
        await env.client.read(1, Layout(table_id=2, table_version=1, chunk_size=CHUNK, stripe_size=2), 0, 1)
    assert caught.value.code == Code.INVALID_ARG


async def test_a_chain_without_serving_replica_fails_after_bounded_retries(env):
    routing = env.storage.routing
    chain = routing.chains[1]
    down = msgspec.structs.replace(
        chain, targets=[ChainTarget(t.target_id, PublicTargetState.OFFLINE) for t in chain.targets]
    )
    env.mgmtd.routing = msgspec.structs.replace(
        routing, chains={**routing.chains, 1: down}, version=routing.version + 1
    )
    await env.routing.refresh()
    client = env.new_client(msgspec.structs.replace(FAST, max_attempts=3))
    layout = Layout(table_id=2, table_version=1, chunk_size=CHUNK)
    for action in (lambda: client.write(1, layout, 0, b"x"), lambda: client.read(1, layout, 0, 1)):
        with pytest.raises(ThreeFSError) as caught:
            await action()
        assert caught.value.code == Code.CLIENT_NO_SERVING_REPLICA


async def test_bad_ranges_are_refused_before_any_rpc(env):
    for call in (
        lambda: env.client.write(1, LAYOUT, -1, b"x"),
        lambda: env.client.read(1, LAYOUT, 0, -1),
        lambda: env.client.read(1, LAYOUT, LAYOUT.max_file_size, 1),
        lambda: env.client.truncate(1, LAYOUT, 0, -5),
    ):
        with pytest.raises(ThreeFSError) as caught:
            await call()
        assert caught.value.code == Code.INVALID_ARG
    assert env.storage.calls == []


async def test_many_concurrent_writers_each_see_their_own_data(env):
    async def writer(inode: int) -> None:
        data = pattern(3 * CHUNK + inode, salt=inode)
        await env.client.write(inode, LAYOUT, inode, data)
        assert await env.client.read(inode, LAYOUT, inode, len(data)) == data

    async with trio.open_nursery() as nursery:
        for inode in range(100, 108):
            nursery.start_soon(writer, inode)
    assert env.client.tags.channels <= FAST.max_in_flight
