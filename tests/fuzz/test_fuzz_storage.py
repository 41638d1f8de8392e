"""Fuzz every storage method over real sockets with invalid requests (``FuzzCluster.exercise``:
a clear error, every storage process alive and answering, no chunk, target or target state
changed). The cases are in ``fuzz_storage_cases``.

- ``test_invalid_requests``: each method but BatchRead, one broken field at a time.
- ``test_batch_read_reports_each_bad_read``: BatchRead answers per read; every bad read gets a
  clear code and no bytes.
- ``test_reads_of_extreme_ids``: valid reads and queries naming inode 2**64 - 1 or chunk index
  2**32 - 1 answer (a hole, nothing found) without an internal error.
- ``test_create_target_refuses_an_impossible_path_as_invalid``: target paths with NUL or an
  overlong component get INVALID_ARG (not the retryable STORAGE_IO_ERROR they once got).
- ``test_bodies_that_do_not_decode``: for every method, bodies that do not match the struct.
"""

from __future__ import annotations

import msgspec
import pytest
from fuzz_bodies import invalid_bodies
from fuzz_cluster import CHUNK, FUZZ, FuzzCluster, encode_body
from fuzz_storage_cases import BAD_TARGET_PATHS, FILE_INODE, INVALID, Layout, batch_reads, build_layout
from hypothesis import given
from hypothesis import strategies as st

from threefs.errors import Code
from threefs.wire import storage as wire
from threefs.wire.common import MethodSpec
from threefs.wire.storage import ChunkKey, RequestTag, UpdateType

pytestmark = pytest.mark.slow

INVALID_BODY = frozenset({Code.RPC_INVALID_BODY})
PER_READ = {wire.BATCH_READ}


@pytest.fixture(scope="module")
def world(cluster: FuzzCluster) -> Layout:
    return cluster.run(build_layout, cluster)


_TAG = RequestTag(b"0123456789abcdef", 1, 2)
_KEY = ChunkKey(FILE_INODE, 1)
EXAMPLES: dict[MethodSpec, msgspec.Struct] = {
    wire.UPDATE_CHUNK: wire.UpdateChunkRequest(
        tag=_TAG,
        chain_id=1,
        chain_version=1,
        chunk=_KEY,
        chunk_size=CHUNK,
        update_type=UpdateType.WRITE,
        offset=1,
        length=2,
        crc32c=3,
        truncate_to=4,
        update_version=5,
        from_target=6,
    ),  # fmt: skip
    wire.BATCH_READ: wire.BatchReadRequest(
        reads=[wire.ReadIO(chain_id=1, chain_version=1, target_id=1101, chunk=_KEY, offset=0, length=5)]
    ),
    wire.QUERY_LAST_CHUNK: wire.QueryLastChunkRequest(
        chain_id=1, chain_version=1, target_id=1101, inode=FILE_INODE, begin_index=1, end_index=2
    ),
    wire.SPACE_INFO: wire.SpaceInfoRequest(target_ids=[1101]),
    wire.CREATE_TARGET: wire.CreateTargetRequest(target_id=9, path="/x"),
    wire.REMOVE_TARGET: wire.RemoveTargetRequest(target_id=9),
    wire.DUMP_CHUNK_META: wire.DumpChunkMetaRequest(target_id=1101, inode=1, after=_KEY, limit=3),
    wire.SYNC_START: wire.SyncStartRequest(chain_id=1, chain_version=1, target_id=1101, include_chunks=False),
    wire.SYNC_DONE: wire.SyncDoneRequest(chain_id=1, chain_version=1, target_id=1101),
    wire.REMOVE_CHUNKS: wire.RemoveChunksRequest(
        tag=_TAG, chain_id=1, chain_version=1, inode=FILE_INODE, begin_index=1, end_index=2, from_target=3
    ),
}


def test_every_method_is_fuzzed():
    """A method added to the service must get an example and invalid requests, or this fails."""
    methods = set(wire.STORAGE_SERVICE.methods)
    assert set(EXAMPLES) == methods
    assert set(INVALID) | PER_READ == methods
    for spec in methods:
        assert type(EXAMPLES[spec]) is spec.request_type


@pytest.mark.parametrize("spec", sorted(INVALID, key=lambda s: s.method_id), ids=lambda s: s.name)
@FUZZ
@given(data=st.data())
def test_invalid_requests(cluster: FuzzCluster, world: Layout, spec: MethodSpec, data: st.DataObject):
    item = data.draw(INVALID[spec](world), label="case")  # type: ignore[operator]
    cluster.exercise(
        "storage",
        cluster.storage_address(item.node),
        spec,
        encode_body(item.request),
        payload=item.payload,
        expect=item.expect,
        what=item.what,
    )


@FUZZ
@given(data=st.data())
def test_batch_read_reports_each_bad_read(cluster: FuzzCluster, world: Layout, data: st.DataObject):
    node, request, expected = data.draw(batch_reads(world), label="reads")
    reply = cluster.exercise_answer(
        "storage", cluster.storage_address(node), wire.BATCH_READ, encode_body(request)
    )
    assert reply.response is not None, reply.describe()
    results = reply.response.results
    assert len(results) == len(expected) and reply.payload == b""
    for result, (what, codes) in zip(results, expected, strict=True):
        assert result.code in codes and result.message and result.length == 0, (
            f"{what}: {result} (expected one of {sorted(c.name for c in codes)})"
        )


@FUZZ
@given(inode=st.sampled_from([2**63 - 1, 2**63, 2**64 - 1]), index=st.sampled_from([0, 2**31, 2**32 - 1]))
def test_reads_of_extreme_ids(cluster: FuzzCluster, world: Layout, inode: int, index: int):
    chain = sorted(world.chains)[0]
    version, targets = world.chains[chain]
    for target in targets:
        address = cluster.storage_address(world.node_of[target])
        read = wire.ReadIO(
            chain_id=chain,
            chain_version=version,
            target_id=target,
            chunk=ChunkKey(inode, index),
            offset=0,
            length=9,
        )
        reply = cluster.exercise_answer(
            "storage", address, wire.BATCH_READ, encode_body(wire.BatchReadRequest(reads=[read]))
        )
        assert reply.response is not None, reply.describe()
        assert [(r.code, r.length) for r in reply.response.results] == [(0, 0)], reply.response
        query = wire.QueryLastChunkRequest(
            chain_id=chain, chain_version=version, target_id=target, inode=inode
        )
        reply = cluster.exercise_answer("storage", address, wire.QUERY_LAST_CHUNK, encode_body(query))
        assert reply.response is not None and not reply.response.found, reply.describe()
        dump = wire.DumpChunkMetaRequest(target_id=target, inode=inode, after=ChunkKey(inode, index))
        reply = cluster.exercise_answer("storage", address, wire.DUMP_CHUNK_META, encode_body(dump))
        assert reply.response is not None and reply.response.chunks == [], reply.describe()


@pytest.mark.parametrize("kind", sorted(BAD_TARGET_PATHS))
def test_create_target_refuses_an_impossible_path_as_invalid(cluster: FuzzCluster, world: Layout, kind: str):
    """A target path with NUL or a component over 255 bytes can never work: INVALID_ARG (not
    retryable), nothing created."""
    node = sorted(set(world.node_of.values()))[0]
    request = wire.CreateTargetRequest(target_id=7777, path=BAD_TARGET_PATHS[kind])
    cluster.exercise(
        "storage",
        cluster.storage_address(node),
        wire.CREATE_TARGET,
        encode_body(request),
        expect={Code.INVALID_ARG},
    )


@pytest.mark.parametrize("spec", sorted(EXAMPLES, key=lambda s: s.method_id), ids=lambda s: s.name)
@FUZZ
@given(data=st.data())
def test_bodies_that_do_not_decode(cluster: FuzzCluster, spec: MethodSpec, data: st.DataObject):
    body = data.draw(invalid_bodies(spec, EXAMPLES[spec]), label="body")
    address = cluster.storage_address(cluster.cluster.storage_node_ids()[0])
    cluster.exercise("storage", address, spec, body, expect=INVALID_BODY)
