"""Invalid requests for every storage method, as hypothesis strategies that each draw a
``Case`` (a request, its payload, the node it goes to and the codes that are right for it).

The world (``Layout``): chains of two targets, one on each storage node, and chunks of one file
written through the ordinary client before the fuzzing starts. Every case breaks exactly one
thing of an otherwise valid request: a stale or future chain version, an unknown chain, target
or node, the wrong node for the role (an update at the tail, a forward from a stranger), an
offset or length outside the chunk, a payload that does not match its length or checksum, a
reversed index range, a path that cannot be a target directory, or an integer out of range.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import msgspec
from crc32c import crc32c
from fuzz_cluster import CHUNK, FuzzCluster
from hypothesis import strategies as st

from client.mgmtd import MgmtdClient
from client.routing import RoutingCache
from client.storage import StorageClient
from threefs.errors import Code
from threefs.wire import storage as wire
from threefs.wire.common import MethodSpec
from threefs.wire.mgmtd import PublicTargetState
from threefs.wire.storage import ChunkKey, RequestTag, UpdateType

__all__ = ["BAD_TARGET_PATHS", "FILE_INODE", "INVALID", "Case", "Layout", "batch_reads", "build_layout"]

FILE_INODE = 4242
INVALID_BODY = frozenset({Code.RPC_INVALID_BODY})
STALE = frozenset({Code.STORAGE_STALE_CHAIN_VERSION})
NOT_FOUND = frozenset({Code.STORAGE_TARGET_NOT_FOUND})
TOO_BIG_U32 = st.sampled_from([2**32, 2**40, 2**64 - 1])
NOT_POSITIVE_U32 = st.sampled_from([0, -1]) | TOO_BIG_U32
# Absolute paths no target directory can have: a NUL byte, a component over NAME_MAX.
BAD_TARGET_PATHS = {"nul": "/tmp/fuzz\x00", "long name": "/" + "x" * 300 + "/t"}


@dataclass(frozen=True)
class Case:
    """One invalid request: where it goes (a storage node id), its payload, the right codes."""

    what: str
    node: int
    request: msgspec.Struct
    expect: frozenset[Code] | None
    payload: bytes = b""


@dataclass(frozen=True)
class Layout:
    """Chains (id -> version and target ids, head first), where each target lives, the chunks
    of ``FILE_INODE`` (index -> chain id), and the directory each target uses."""

    chains: dict[int, tuple[int, list[int]]]
    node_of: dict[int, int]
    chunks: dict[int, int]
    target_paths: dict[int, str]

    def version(self, chain: int) -> int:
        return self.chains[chain][0]

    def head(self, chain: int) -> int:
        return self.chains[chain][1][0]

    def tail(self, chain: int) -> int:
        return self.chains[chain][1][-1]

    def unknown(self, known: object) -> st.SearchStrategy[int]:
        return (st.sampled_from([3, 99, 2**31, 2**32 - 1]) | st.integers(1, 2**32 - 1)).filter(
            lambda n: n not in known  # type: ignore[operator]
        )

    def stale_versions(self, chain: int) -> st.SearchStrategy[int]:
        current = self.version(chain)
        return (st.sampled_from([1, current + 1, 2**32 - 1]) | st.integers(1, 2**32 - 1)).filter(
            lambda v: v != current
        )


async def build_layout(cluster: FuzzCluster) -> Layout:
    """Write three chunks of ``FILE_INODE`` over every chain and read back where things are."""
    rpc = cluster.rpc
    assert rpc is not None
    routing = RoutingCache(MgmtdClient([cluster.mgmtd_address], rpc=rpc))
    await routing.refresh()
    file_layout = cluster.cluster.layout()
    await StorageClient(rpc, routing).write(FILE_INODE, file_layout, 0, os.urandom(2 * CHUNK + 50))
    info = await cluster.routing()
    chains = {}
    for chain in info.chains.values():
        assert all(t.public_state == PublicTargetState.SERVING for t in chain.targets), chain
        chains[chain.chain_id] = (chain.chain_version, [t.target_id for t in chain.targets])
    chunks = {}
    for targets in (await cluster.storage_chunks()).values():
        for target_id, (_, metas) in targets.items():
            for meta in metas:
                if meta.chunk.inode == FILE_INODE:
                    chunks[meta.chunk.index] = info.targets[target_id].chain_id
    assert sorted(chunks) == [0, 1, 2], chunks
    paths = {}
    for node_id in cluster.cluster.storage_node_ids():
        for target_id in cluster.cluster.target_ids(node_id):
            paths[target_id] = str(cluster.cluster.dir / f"storage-{node_id}" / f"target-{target_id}")
    return Layout(
        chains=chains,
        node_of={t.target_id: t.node_id for t in info.targets.values()},
        chunks=chunks,
        target_paths=paths,
    )


def tags() -> st.SearchStrategy[RequestTag]:
    """Fresh update tags (random client ids: a drawn one would shrink to a shared value)."""
    return st.builds(lambda seq: RequestTag(os.urandom(16), 0, seq), st.integers(1, 2**63))


@st.composite
def update_chunks(draw: st.DrawFn, world: Layout) -> Case:
    index = draw(st.sampled_from(sorted(world.chunks)) | st.integers(3, 2**32 - 1))
    chain = world.chunks.get(index, draw(st.sampled_from(sorted(world.chains))))
    data = draw(st.binary(min_size=1, max_size=64))
    offset = draw(st.integers(0, CHUNK - len(data)))
    fields = {
        "tag": draw(tags()),
        "chain_id": chain,
        "chain_version": world.version(chain),
        "chunk": ChunkKey(FILE_INODE, index),
        "chunk_size": CHUNK,
        "update_type": UpdateType.WRITE,
        "offset": offset,
        "length": len(data),
        "crc32c": crc32c(data),
    }
    node = world.node_of[world.head(chain)]
    kind = draw(
        st.sampled_from(
            [
                "stale version",
                "unknown chain",
                "not head",
                "outside",
                "length",
                "checksum",
                "truncate past",
                "data without a write",
                "replace at an offset",
                "stranger",
                "range",
            ]
        )
    )
    codes: set[Code] = set()
    if kind == "stale version":
        fields["chain_version"] = draw(world.stale_versions(chain))
        codes = set(STALE)
    elif kind == "unknown chain":
        fields["chain_id"] = draw(world.unknown(world.chains))
        codes = {Code.STORAGE_STALE_CHAIN_VERSION, Code.STORAGE_TARGET_NOT_FOUND}
    elif kind == "not head":
        node = world.node_of[world.tail(chain)]
        codes = {Code.STORAGE_NOT_HEAD}
    elif kind == "outside":
        fields["offset"] = draw(st.integers(CHUNK - len(data) + 1, 2**32 - 1))
        codes = {Code.STORAGE_BAD_OFFSET}
    elif kind == "length":
        fields["length"] = draw(st.integers(0, 2**32 - 1).filter(lambda n: n != len(data)))
        codes = {Code.INVALID_ARG}
    elif kind == "checksum":
        fields["crc32c"] = draw(st.integers(0, 2**32 - 1).filter(lambda c: c != crc32c(data)))
        codes = {Code.STORAGE_CHECKSUM_MISMATCH}
    elif kind == "truncate past":
        fields.update(update_type=UpdateType.TRUNCATE, offset=0, length=0, crc32c=crc32c(b""))
        fields["truncate_to"] = draw(st.integers(CHUNK + 1, 2**32 - 1))
        data, codes = b"", {Code.STORAGE_BAD_OFFSET}
    elif kind == "data without a write":
        fields["update_type"] = draw(st.sampled_from([UpdateType.TRUNCATE, UpdateType.REMOVE]))
        codes = {Code.INVALID_ARG}
    elif kind == "replace at an offset":
        fields.update(update_type=UpdateType.REPLACE, offset=draw(st.integers(1, CHUNK - len(data))))
        codes = {Code.STORAGE_BAD_OFFSET}
    elif kind == "stranger":  # a forward from a target that is not this one's predecessor
        stranger = draw(world.unknown({0, world.head(chain)}) | st.sampled_from([world.tail(chain)]))
        node = world.node_of[draw(st.sampled_from([world.head(chain), world.tail(chain)]))]
        fields.update(from_target=stranger, update_version=draw(st.integers(0, 2**64 - 1)))
        codes = {Code.INVALID_ARG}
    else:
        name, bad = draw(
            st.sampled_from(
                [
                    ("chunk_size", st.sampled_from([0, 4096, CHUNK - 1, (64 << 20) + 1, -1])),
                    ("update_type", st.sampled_from([0, 5, 255, -1])),
                    ("chain_id", NOT_POSITIVE_U32),
                    ("chain_version", NOT_POSITIVE_U32),
                    ("offset", TOO_BIG_U32),
                    ("chunk", st.builds(ChunkKey, st.just(FILE_INODE), TOO_BIG_U32)),
                    ("chunk", st.builds(ChunkKey, st.sampled_from([-1, -(2**63)]), st.just(0))),
                ]
            )
        )
        fields[name] = draw(bad)
        codes = set(INVALID_BODY)
    return Case(kind, node, wire.UpdateChunkRequest(**fields), frozenset(codes), data)


@st.composite
def bad_reads(draw: st.DrawFn, world: Layout) -> tuple[str, int, wire.ReadIO, frozenset[Code]]:
    """One read that must fail, on which node: ``(what, node, read, codes)``."""
    index = draw(st.sampled_from(sorted(world.chunks)))
    chain = world.chunks[index]
    target = draw(st.sampled_from(world.chains[chain][1]))
    fields = {
        "chain_id": chain,
        "chain_version": world.version(chain),
        "target_id": target,
        "chunk": ChunkKey(FILE_INODE, index),
        "offset": 0,
        "length": CHUNK,
    }
    node = world.node_of[target]
    kind = draw(st.sampled_from(["stale version", "unknown chain", "unknown target", "other node's target",
                                 "target of another chain", "outside"]))  # fmt: skip
    codes = NOT_FOUND
    if kind == "stale version":
        fields["chain_version"], codes = draw(world.stale_versions(chain)), STALE
    elif kind == "unknown chain":
        fields["chain_id"] = draw(world.unknown(world.chains))
        codes = STALE | NOT_FOUND
    elif kind == "unknown target":
        fields["target_id"] = draw(world.unknown(world.node_of))
    elif kind == "other node's target":
        other = [t for t in world.chains[chain][1] if t != target]
        fields["target_id"] = draw(st.sampled_from(other))
    elif kind == "target of another chain":
        mine = [t for t, n in world.node_of.items() if n == node and t not in world.chains[chain][1]]
        fields["target_id"] = draw(st.sampled_from(mine))
    else:
        # offset 0 is left out: a read from 0 of at least the chunk is a whole-chunk read
        # (storage/ops/read.py), answered even past the chunk size
        fields["offset"] = offset = draw(st.integers(1, 2**32 - 1))
        fields["length"] = draw(st.integers(max(1, CHUNK - offset + 1), 2**32 - 1))
        codes = frozenset({Code.STORAGE_BAD_OFFSET})
    return kind, node, wire.ReadIO(**fields), codes


@st.composite
def batch_reads(
    draw: st.DrawFn, world: Layout
) -> tuple[int, wire.BatchReadRequest, list[tuple[str, frozenset[Code]]]]:
    """Bad reads for one node: ``(node, request, [(what, codes)] per read)``."""
    first = draw(bad_reads(world))
    reads = [first] + draw(st.lists(bad_reads(world).filter(lambda r: r[1] == first[1]), max_size=3))
    return first[1], wire.BatchReadRequest(reads=[r[2] for r in reads]), [(r[0], r[3]) for r in reads]


@st.composite
def positioned(draw: st.DrawFn, world: Layout) -> tuple[str, int, dict[str, int], frozenset[Code]]:
    """``(what, node, {chain_id, chain_version, target_id}, codes)`` naming no usable replica."""
    chain = draw(st.sampled_from(sorted(world.chains)))
    target = draw(st.sampled_from(world.chains[chain][1]))
    fields = {"chain_id": chain, "chain_version": world.version(chain), "target_id": target}
    node = world.node_of[target]
    kind = draw(st.sampled_from(["stale version", "unknown chain", "unknown target", "other node's target"]))
    if kind == "stale version":
        fields["chain_version"] = draw(world.stale_versions(chain))
        return kind, node, fields, STALE
    if kind == "unknown chain":
        fields["chain_id"] = draw(world.unknown(world.chains))
        return kind, node, fields, STALE | NOT_FOUND
    if kind == "unknown target":
        fields["target_id"] = draw(world.unknown(world.node_of))
        return kind, node, fields, NOT_FOUND
    fields["target_id"] = draw(st.sampled_from([t for t in world.chains[chain][1] if t != target]))
    return kind, node, fields, NOT_FOUND


@st.composite
def query_last_chunks(draw: st.DrawFn, world: Layout) -> Case:
    if draw(st.booleans()):
        what, node, fields, codes = draw(positioned(world))
        return Case(what, node, wire.QueryLastChunkRequest(**fields, inode=FILE_INODE), codes)
    chain = draw(st.sampled_from(sorted(world.chains)))
    target = draw(st.sampled_from(world.chains[chain][1]))
    end = draw(st.integers(1, 2**32 - 2))
    request = wire.QueryLastChunkRequest(
        chain_id=chain,
        chain_version=world.version(chain),
        target_id=target,
        inode=FILE_INODE,
        begin_index=draw(st.integers(end + 1, 2**32 - 1)),
        end_index=end,
    )
    return Case("reversed range", world.node_of[target], request, frozenset({Code.INVALID_ARG}))


@st.composite
def space_infos(draw: st.DrawFn, world: Layout) -> Case:
    node = draw(st.sampled_from(sorted(set(world.node_of.values()))))
    mine = [t for t, n in world.node_of.items() if n == node]
    others = [t for t, n in world.node_of.items() if n != node]
    bad = draw(world.unknown(world.node_of) | st.sampled_from(others))
    ids = draw(st.permutations([*draw(st.lists(st.sampled_from(mine), max_size=2)), bad]))
    if draw(st.integers(0, 4)) == 0:
        return Case(
            "range", node, wire.SpaceInfoRequest(target_ids=[*ids[:-1], draw(NOT_POSITIVE_U32)]), INVALID_BODY
        )
    return Case("unknown target", node, wire.SpaceInfoRequest(target_ids=ids), NOT_FOUND)


@st.composite
def create_targets(draw: st.DrawFn, world: Layout) -> Case:
    node = draw(st.sampled_from(sorted(set(world.node_of.values()))))
    new_id = draw(world.unknown(world.node_of))
    kind = draw(st.sampled_from(["relative", "taken id", "nul", "long name", "range"]))
    if kind == "relative":
        path = draw(
            st.sampled_from(["x", "target", "./t", "../t"])
            | st.text(min_size=1, max_size=20).filter(lambda p: not p.startswith("/"))
        )
        target_id = draw(st.sampled_from(sorted(world.node_of)) | st.just(new_id))
        return Case(
            kind,
            node,
            wire.CreateTargetRequest(target_id=target_id, path=path),
            frozenset({Code.INVALID_ARG}),
        )
    if kind == "taken id":
        mine = [t for t, n in world.node_of.items() if n == node]
        target_id = draw(st.sampled_from(mine))
        path = "/" + draw(st.text(min_size=1, max_size=20).filter(lambda p: "\x00" not in p))
        return Case(
            kind,
            node,
            wire.CreateTargetRequest(target_id=target_id, path=path),
            frozenset({Code.ALREADY_EXISTS}),
        )
    if kind in ("nul", "long name"):
        path = BAD_TARGET_PATHS[kind] + draw(st.text(max_size=8).filter(lambda t: "/" not in t))
        return Case(
            kind, node, wire.CreateTargetRequest(target_id=new_id, path=path), frozenset({Code.INVALID_ARG})
        )
    return Case(kind, node, wire.CreateTargetRequest(target_id=draw(NOT_POSITIVE_U32)), INVALID_BODY)


@st.composite
def remove_targets(draw: st.DrawFn, world: Layout) -> Case:
    node = draw(st.sampled_from(sorted(set(world.node_of.values()))))
    kind = draw(st.sampled_from(["unknown", "other node's", "in a chain", "range"]))
    if kind == "unknown":
        return Case(
            kind, node, wire.RemoveTargetRequest(target_id=draw(world.unknown(world.node_of))), NOT_FOUND
        )
    if kind == "other node's":
        other = draw(st.sampled_from([t for t, n in world.node_of.items() if n != node]))
        return Case(kind, node, wire.RemoveTargetRequest(target_id=other), NOT_FOUND)
    if kind == "in a chain":
        mine = draw(st.sampled_from([t for t, n in world.node_of.items() if n == node]))
        return Case(kind, node, wire.RemoveTargetRequest(target_id=mine), frozenset({Code.INVALID_ARG}))
    return Case(kind, node, wire.RemoveTargetRequest(target_id=draw(NOT_POSITIVE_U32)), INVALID_BODY)


@st.composite
def dump_chunk_metas(draw: st.DrawFn, world: Layout) -> Case:
    node = draw(st.sampled_from(sorted(set(world.node_of.values()))))
    if draw(st.integers(0, 3)) == 0:
        field = draw(st.sampled_from(["target_id", "inode", "limit"]))
        values = {
            "target_id": 1101,
            field: draw(
                st.sampled_from([-1, -(2**63)])
                if field == "inode"
                else NOT_POSITIVE_U32.filter(lambda v: v or field != "limit")
            ),
        }
        return Case("range", node, wire.DumpChunkMetaRequest(**values), INVALID_BODY)
    other = [t for t, n in world.node_of.items() if n != node]
    target = draw(world.unknown(world.node_of) | st.sampled_from(other))
    request = wire.DumpChunkMetaRequest(target_id=target, inode=draw(st.none() | st.integers(0, 2**64 - 1)))
    return Case("unknown target", node, request, NOT_FOUND)


@st.composite
def sync_starts(draw: st.DrawFn, world: Layout) -> Case:
    what, node, fields, codes = draw(positioned(world))
    if draw(st.booleans()):  # a valid position, but the target is SERVING, not SYNCING
        what, codes = "not syncing", STALE
        chain = draw(st.sampled_from(sorted(world.chains)))
        target = draw(st.sampled_from(world.chains[chain][1]))
        fields = {"chain_id": chain, "chain_version": world.version(chain), "target_id": target}
        node = world.node_of[target]
    return Case(what, node, wire.SyncStartRequest(**fields, include_chunks=draw(st.booleans())), codes)


@st.composite
def sync_dones(draw: st.DrawFn, world: Layout) -> Case:
    start = draw(sync_starts(world))
    request = wire.SyncDoneRequest(
        chain_id=start.request.chain_id,  # type: ignore[attr-defined]
        chain_version=start.request.chain_version,  # type: ignore[attr-defined]
        target_id=start.request.target_id,  # type: ignore[attr-defined]
    )
    return Case(start.what, start.node, request, start.expect)


@st.composite
def remove_chunks(draw: st.DrawFn, world: Layout) -> Case:
    chain = draw(st.sampled_from(sorted(world.chains)))
    fields = {
        "tag": draw(tags()),
        "chain_id": chain,
        "chain_version": world.version(chain),
        "inode": FILE_INODE,
    }
    node = world.node_of[world.head(chain)]
    kind = draw(
        st.sampled_from(["stale version", "unknown chain", "not head", "reversed", "stranger", "range"])
    )
    codes: frozenset[Code]
    if kind == "stale version":
        fields["chain_version"], codes = draw(world.stale_versions(chain)), STALE
    elif kind == "unknown chain":
        fields["chain_id"], codes = draw(world.unknown(world.chains)), STALE | NOT_FOUND
    elif kind == "not head":
        node, codes = world.node_of[world.tail(chain)], frozenset({Code.STORAGE_NOT_HEAD})
    elif kind == "reversed":
        end = draw(st.integers(1, 2**32 - 2))
        fields.update(begin_index=draw(st.integers(end + 1, 2**32 - 1)), end_index=end)
        codes = frozenset({Code.INVALID_ARG})
    elif kind == "stranger":
        fields["from_target"] = draw(
            world.unknown({0, world.head(chain)}) | st.sampled_from([world.tail(chain)])
        )
        node = world.node_of[draw(st.sampled_from([world.head(chain), world.tail(chain)]))]
        codes = frozenset({Code.INVALID_ARG})
    else:
        fields["chain_version"], codes = draw(NOT_POSITIVE_U32), INVALID_BODY
    return Case(kind, node, wire.RemoveChunksRequest(**fields), codes)


INVALID: dict[MethodSpec, object] = {
    wire.UPDATE_CHUNK: update_chunks,
    wire.QUERY_LAST_CHUNK: query_last_chunks,
    wire.SPACE_INFO: space_infos,
    wire.CREATE_TARGET: create_targets,
    wire.REMOVE_TARGET: remove_targets,
    wire.DUMP_CHUNK_META: dump_chunk_metas,
    wire.SYNC_START: sync_starts,
    wire.SYNC_DONE: sync_dones,
    wire.REMOVE_CHUNKS: remove_chunks,
}
