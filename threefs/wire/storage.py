"""The storage service (id 4): chunk reads, CRAQ updates along a chain, and resync.

Requests address a chain by ``chain_id`` and ``chain_version`` (from the caller's routing info);
a node that hosts several targets finds its target in that chain itself, except where a request
names ``target_id`` (reads, dump, sync and target admin, which are about one replica). A stale
``chain_version`` at any hop is refused with STORAGE_STALE_CHAIN_VERSION (retryable: refresh
routing info and retry). Chunk data travels as the RPC payload, never inside the struct.

Updates (write, truncate, remove, full replace) all take the CRAQ path: the client sends
``UpdateChunk`` to the chain head; the head takes the chunk lock, assigns ``update_version =
commit_version + 1``, prepares its copy and forwards the same request (with the version) to its
successor, and so on to the tail; the tail commits, and every target commits as the reply travels
back. Replicas must agree on the checksum of the whole chunk after the update
(STORAGE_CHECKSUM_MISMATCH otherwise). ``tag`` makes retries idempotent: a duplicate of an
update already applied gets the first answer.

Add fields only at the end with a default; method ids are never reused.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated

import msgspec

from threefs.wire.common import MethodSpec, ServiceSpec, paired_method
from threefs.wire.ids import ServiceId

U32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
U64 = Annotated[int, msgspec.Meta(ge=0)]
PositiveU32 = Annotated[int, msgspec.Meta(ge=1, le=2**32 - 1)]
ChunkSize = Annotated[int, msgspec.Meta(ge=64 << 10, le=64 << 20)]


class ChunkKey(msgspec.Struct, frozen=True, order=True, array_like=True):
    """A chunk: the ``index``-th chunk of file ``inode``."""

    inode: U64
    index: U32


class RequestTag(msgspec.Struct, frozen=True, array_like=True):
    """Identifies one update for idempotent retries: a client id (16 random bytes per client
    process), a channel (one per concurrent writer task) and a sequence number that increases
    per channel. A retry reuses the tag of the first attempt."""

    client_id: bytes
    channel: U32
    seq: U64


class UpdateType(IntEnum):
    WRITE = 1  # payload written at offset (the chunk grows to offset + length if needed)
    TRUNCATE = 2  # the chunk's length becomes ``truncate_to`` (cut, or zero-extended); no payload
    REMOVE = 3  # the chunk is deleted on every replica; no payload
    REPLACE = 4  # resync: the payload is the whole committed chunk of the predecessor


class ChunkMetaInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A chunk's metadata as it crosses the wire (see ``storage.store.interface.ChunkMeta``)."""

    chunk: ChunkKey
    chunk_size: U32
    chain_version: U32
    update_version: U64
    commit_version: U64
    length: U32
    crc32c: U32
    dirty: bool = False


class UpdateChunkRequest(msgspec.Struct, frozen=True, kw_only=True):
    """An update of one chunk. ``crc32c`` is the checksum of the payload (verified on arrival at
    every hop). ``update_version`` is 0 from the client and set by the head when it forwards;
    ``from_target`` is the forwarding target (0 from a client)."""

    tag: RequestTag
    chain_id: PositiveU32
    chain_version: PositiveU32
    chunk: ChunkKey
    chunk_size: ChunkSize
    update_type: UpdateType
    offset: U32 = 0
    length: U32 = 0
    crc32c: U32 = 0
    truncate_to: U32 = 0
    update_version: U64 = 0
    from_target: U32 = 0


class UpdateChunkResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The committed result: ``commit_version``, the chunk's ``length`` and whole-chunk
    ``crc32c`` after the update (0, 0 for a removed chunk)."""

    commit_version: U64
    length: U32
    crc32c: U32


class ReadIO(msgspec.Struct, frozen=True, kw_only=True):
    """One range of one chunk on one replica (``target_id``) of ``chain_id``."""

    chain_id: PositiveU32
    chain_version: PositiveU32
    target_id: PositiveU32
    chunk: ChunkKey
    offset: U32
    length: U32


class ReadResult(msgspec.Struct, frozen=True, kw_only=True):
    """``code`` 0 and ``length`` bytes (fewer than asked at the end of the chunk, 0 for a
    missing chunk, which reads as a hole) that follow in the payload; or a STORAGE_* error code
    and no bytes. ``crc32c`` covers the bytes returned; ``commit_version`` is the version read."""

    code: U32 = 0
    message: str = ""
    length: U32 = 0
    crc32c: U32 = 0
    commit_version: U64 = 0


class BatchReadRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Many reads on targets of one node; the reply payload is the results' bytes in order."""

    reads: list[ReadIO]


class BatchReadResponse(msgspec.Struct, frozen=True, kw_only=True):
    results: list[ReadResult]


class QueryLastChunkRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The last chunk of ``inode`` held by ``target_id`` of ``chain_id`` among chunk indexes
    ``[begin_index, end_index)`` (end 0: no bound), for file-length queries."""

    chain_id: PositiveU32
    chain_version: PositiveU32
    target_id: PositiveU32
    inode: U64
    begin_index: U32 = 0
    end_index: U32 = 0


class QueryLastChunkResponse(msgspec.Struct, frozen=True, kw_only=True):
    """``found`` False when the target holds no chunk of the inode in the range."""

    found: bool
    last_index: U32 = 0
    last_length: U32 = 0
    chunk_count: U32 = 0


class SpaceInfoRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Space of the given targets of this node (all of them when empty)."""

    target_ids: list[PositiveU32] = msgspec.field(default_factory=list)


class TargetSpace(msgspec.Struct, frozen=True, kw_only=True):
    target_id: int
    capacity_bytes: U64
    free_bytes: U64
    used_bytes: U64
    chunk_count: U64


class SpaceInfoResponse(msgspec.Struct, frozen=True, kw_only=True):
    targets: list[TargetSpace]


class CreateTargetRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Admin: create a target directory under ``path`` on this node (empty: the node's default
    data directory) and start serving it (local state ONLINE until mgmtd puts it in a chain)."""

    target_id: PositiveU32
    path: str = ""


class CreateTargetResponse(msgspec.Struct, frozen=True, kw_only=True):
    target_id: int
    path: str


class RemoveTargetRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Admin: stop serving a target and delete its chunks (mgmtd must already have it OFFLINE
    and in no chain)."""

    target_id: PositiveU32


class RemoveTargetResponse(msgspec.Struct, frozen=True, kw_only=True):
    removed_chunks: U64


class DumpChunkMetaRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Metadata of the chunks of ``target_id`` (of ``inode`` only when given), paged: at most
    ``limit`` chunks (0: all) after ``after`` (None: from the start)."""

    target_id: PositiveU32
    inode: U64 | None = None
    after: ChunkKey | None = None
    limit: U32 = 0


class DumpChunkMetaResponse(msgspec.Struct, frozen=True, kw_only=True):
    chunks: list[ChunkMetaInfo]
    more: bool = False


class SyncStartRequest(msgspec.Struct, frozen=True, kw_only=True):
    """From the predecessor to a SYNCING target: "I will sync you for this chain version";
    the answer is every chunk's metadata on the syncing target, or none when
    ``include_chunks`` is False (the predecessor then pages through DumpChunkMeta, so a target
    of any size fits the frame limit)."""

    chain_id: PositiveU32
    chain_version: PositiveU32
    target_id: PositiveU32
    include_chunks: bool = True


class SyncStartResponse(msgspec.Struct, frozen=True, kw_only=True):
    chunks: list[ChunkMetaInfo]


class SyncDoneRequest(msgspec.Struct, frozen=True, kw_only=True):
    """From the predecessor: every chunk is in sync; the target may report UPTODATE."""

    chain_id: PositiveU32
    chain_version: PositiveU32
    target_id: PositiveU32


class SyncDoneResponse(msgspec.Struct, frozen=True, kw_only=True):
    pass


class RemoveChunksRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Remove every chunk of ``inode`` with index in ``[begin_index, end_index)`` (end 0: no
    bound) from every replica of the chain: head to tail like an update (file removal and the
    chunks past a truncated end). ``from_target`` is the forwarding target (0 from a client)."""

    tag: RequestTag
    chain_id: PositiveU32
    chain_version: PositiveU32
    inode: U64
    begin_index: U32 = 0
    end_index: U32 = 0
    from_target: U32 = 0


class RemoveChunksResponse(msgspec.Struct, frozen=True, kw_only=True):
    """How many chunks the tail removed."""

    removed: U64


def _method(method_id: int, name: str, *, payload_crc_in_body: bool = False) -> MethodSpec:
    return paired_method(
        ServiceId.STORAGE, "Storage", method_id, name, globals(), payload_crc_in_body=payload_crc_in_body
    )


# The update's ``crc32c`` and each read result's ``crc32c`` check the payloads end to end.
UPDATE_CHUNK = _method(1, "UpdateChunk", payload_crc_in_body=True)
BATCH_READ = _method(2, "BatchRead", payload_crc_in_body=True)
QUERY_LAST_CHUNK = _method(3, "QueryLastChunk")
SPACE_INFO = _method(4, "SpaceInfo")
CREATE_TARGET = _method(5, "CreateTarget")
REMOVE_TARGET = _method(6, "RemoveTarget")
DUMP_CHUNK_META = _method(7, "DumpChunkMeta")
SYNC_START = _method(8, "SyncStart")
SYNC_DONE = _method(9, "SyncDone")
REMOVE_CHUNKS = _method(10, "RemoveChunks")

RETIRED_METHOD_IDS: dict[int, str] = {}

STORAGE_SERVICE = ServiceSpec(
    ServiceId.STORAGE,
    "Storage",
    (
        UPDATE_CHUNK,
        BATCH_READ,
        QUERY_LAST_CHUNK,
        SPACE_INFO,
        CREATE_TARGET,
        REMOVE_TARGET,
        DUMP_CHUNK_META,
        SYNC_START,
        SYNC_DONE,
        REMOVE_CHUNKS,
    ),
    RETIRED_METHOD_IDS,
)
