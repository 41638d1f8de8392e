"""One chunk update as this hop applies and forwards it, and the checks on an incoming one.

``ChunkUpdate`` is the request's content in the form the store takes (offset, data, truncation,
replace) plus the version the head assigned. ``as_replace`` turns a WRITE or TRUNCATE into the
whole-chunk REPLACE that a SYNCING successor, a successor that cannot apply the increment, or a
leftover at the head needs (see ``storage.components.update_rules``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from crc32c import crc32c

from storage.components.targets import Target
from storage.state import StorageState
from storage.store import rules
from storage.store.interface import ChunkId, ChunkMeta
from threefs.errors import Code, ThreeFSError
from threefs.rpc.transport import Buffer
from threefs.wire.storage import ChunkKey, RequestTag, UpdateChunkRequest, UpdateType

__all__ = ["ChunkUpdate", "check_update_request", "full_content", "prepare_locally"]

_WITH_DATA = (UpdateType.WRITE, UpdateType.REPLACE)


def check_update_request(request: UpdateChunkRequest, payload: Buffer) -> None:
    """Refuse a malformed update before anything happens: INVALID_ARG (payload size or fields
    that do not fit the update type), STORAGE_BAD_OFFSET (outside the chunk),
    STORAGE_CHECKSUM_MISMATCH (the payload does not match ``crc32c``)."""
    kind = request.update_type
    if kind in _WITH_DATA:
        if len(payload) != request.length:
            raise ThreeFSError(
                Code.INVALID_ARG, f"{kind.name} says {request.length} bytes, the payload has {len(payload)}"
            )
        if request.offset + request.length > request.chunk_size or (
            kind == UpdateType.REPLACE and request.offset
        ):
            raise ThreeFSError(
                Code.STORAGE_BAD_OFFSET,
                f"{kind.name} [{request.offset}, +{request.length}) outside chunk size {request.chunk_size}",
            )
    elif len(payload) or request.length:
        raise ThreeFSError(Code.INVALID_ARG, f"{kind.name} carries no data")
    if kind == UpdateType.TRUNCATE and request.truncate_to > request.chunk_size:
        raise ThreeFSError(
            Code.STORAGE_BAD_OFFSET,
            f"truncate to {request.truncate_to} beyond chunk size {request.chunk_size}",
        )
    checksum = crc32c(payload)
    if checksum != request.crc32c:
        raise ThreeFSError(
            Code.STORAGE_CHECKSUM_MISMATCH,
            f"payload of {request.chunk} has crc32c {checksum:#010x}, request says {request.crc32c:#010x}",
        )


@dataclass(frozen=True, slots=True)
class ChunkUpdate:
    """An update of ``chunk`` at version ``update_version`` (0 until the head assigns one)."""

    tag: RequestTag
    chain_id: int
    chunk: ChunkKey
    chunk_size: int
    update_type: UpdateType
    offset: int
    data: Buffer
    truncate_to: int | None
    update_version: int

    @classmethod
    def from_request(cls, request: UpdateChunkRequest, payload: Buffer, update_version: int) -> ChunkUpdate:
        truncate_to = request.truncate_to if request.update_type == UpdateType.TRUNCATE else None
        return cls(
            tag=request.tag,
            chain_id=request.chain_id,
            chunk=request.chunk,
            chunk_size=request.chunk_size,
            update_type=request.update_type,
            offset=request.offset,
            data=payload,
            truncate_to=truncate_to,
            update_version=update_version,
        )

    @property
    def chunk_id(self) -> ChunkId:
        return ChunkId(self.chunk.inode, self.chunk.index)

    @property
    def is_whole(self) -> bool:
        """Whether the update already carries the whole chunk (REPLACE) or needs none (REMOVE)."""
        return self.update_type in (UpdateType.REPLACE, UpdateType.REMOVE)

    def as_replace(self, content: bytes) -> ChunkUpdate:
        """The same update as a REPLACE carrying ``content`` (the whole chunk after it)."""
        return replace(self, update_type=UpdateType.REPLACE, offset=0, data=content, truncate_to=None)

    def request(self, chain_version: int, from_target: int) -> tuple[UpdateChunkRequest, Buffer]:
        """The forwarded request and its payload."""
        request = UpdateChunkRequest(
            tag=self.tag,
            chain_id=self.chain_id,
            chain_version=chain_version,
            chunk=self.chunk,
            chunk_size=self.chunk_size,
            update_type=self.update_type,
            offset=self.offset,
            length=len(self.data),
            crc32c=crc32c(self.data),
            truncate_to=self.truncate_to or 0,
            update_version=self.update_version,
            from_target=from_target,
        )
        return request, self.data


def _content_after(store_meta: ChunkMeta | None, committed: bytes, update: ChunkUpdate) -> bytes:
    """The whole chunk after applying ``update`` to the committed bytes (the stores' own rules)."""
    if update.update_type == UpdateType.REPLACE:
        return bytes(update.data)
    base = store_meta.commit_version if store_meta is not None else 0
    if store_meta is not None and store_meta.commit_version == 0:
        store_meta = None  # a chunk with no committed data yet: the update applies to nothing
    plan = rules.plan_prepare(
        store_meta,
        update.chunk_id,
        update_version=base + 1,
        chunk_size=update.chunk_size,
        offset=update.offset,
        data=update.data,
        truncate_to=update.truncate_to,
        replace=False,
    )
    return rules.build_pending(committed, plan)


async def full_content(state: StorageState, target: Target, update: ChunkUpdate) -> bytes:
    """The whole chunk as ``update`` leaves it: the target's committed bytes with the update
    applied. The caller holds the chunk lock."""
    chunk_id = update.chunk_id

    def build() -> bytes:
        meta = target.store.get_meta(chunk_id)
        committed = b""
        if meta is not None and meta.commit_version > 0:
            committed = target.store.read(chunk_id, 0, meta.chunk_size)
        return _content_after(meta, committed, update)

    return await state.store_call(target, build, chunk=True)


async def prepare_locally(
    state: StorageState, target: Target, update: ChunkUpdate, chain_version: int
) -> ChunkMeta:
    """Write ``update`` as the target's pending version; returns the DIRTY meta."""
    store = target.store
    meta = await state.store_call(
        target,
        lambda: store.prepare(
            update.chunk_id,
            update_version=update.update_version,
            chain_version=chain_version,
            chunk_size=update.chunk_size,
            offset=update.offset,
            data=update.data,
            truncate_to=update.truncate_to,
            replace=update.update_type == UpdateType.REPLACE,
        ),
        chunk=True,
    )
    state.metrics.write_ops.labels(str(target.target_id)).inc()
    state.metrics.write_bytes.labels(str(target.target_id)).inc(len(update.data))
    return meta
