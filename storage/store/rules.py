"""The update rules every ChunkStore shares: argument checks, version rules and the pending layout.

Both implementations (``mem`` and ``disk``) call these pure functions, so they cannot drift apart:
``check_read`` clips a read, ``plan_prepare`` validates a prepare and says what the pending
version will hold, ``check_commit`` decides between commit, no-op and STALE_UPDATE, and
``pending_meta`` / ``committed_meta`` / ``aborted_meta`` build the metadata after each step.

Rules beyond the interface docstring (the conformance suite pins them):

- ``chunk_size`` must lie in ``[MIN_CHUNK_SIZE, MAX_CHUNK_SIZE]`` (INVALID_ARG otherwise), ``inode``
  in ``[0, 2**64)`` and ``index`` in ``[0, 2**32)`` (INVALID_ARG), as on the wire.
- A read needs ``0 <= offset``, ``0 <= length`` and ``offset + length <= chunk_size``
  (STORAGE_BAD_OFFSET); it is then clipped to the committed length.
- A write of zero bytes never extends the chunk (only ``truncate_to`` does); ``truncate_to`` must
  lie in ``[0, chunk_size]``.
- A valid prepare replaces whatever version is pending, whatever its number (the caller holds the
  chunk lock, so the newest prepare wins).
- ``chain_version`` reports the pending update's chain version while DIRTY; abort restores the
  committed one.
- Commit of any version ``<= commit_version`` is a no-op returning the current meta.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec
from crc32c import crc32c

from storage.store.interface import MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, ChunkId, ChunkMeta, ChunkState
from threefs.errors import Code, ThreeFSError

_ZEROS = bytes(1 << 20)
_MAX_INODE = 1 << 64
_MAX_INDEX = 1 << 32


def check_chunk_id(chunk_id: ChunkId) -> None:
    """INVALID_ARG unless ``chunk_id`` fits the wire's ``(u64, u32)``."""
    if not (0 <= chunk_id.inode < _MAX_INODE and 0 <= chunk_id.index < _MAX_INDEX):
        raise ThreeFSError(Code.INVALID_ARG, f"chunk id out of range: {chunk_id}")


def check_read(meta: ChunkMeta, offset: int, length: int) -> int:
    """How many committed bytes a read of ``[offset, offset + length)`` returns."""
    if offset < 0 or length < 0 or offset + length > meta.chunk_size:
        raise ThreeFSError(
            Code.STORAGE_BAD_OFFSET,
            f"read [{offset}, +{length}) outside chunk {meta.chunk_id} of size {meta.chunk_size}",
        )
    return max(0, min(length, meta.length - offset))


def zeros_crc(crc: int, count: int) -> int:
    """``crc`` continued over ``count`` zero bytes."""
    while count > 0:
        step = min(count, len(_ZEROS))
        crc = crc32c(memoryview(_ZEROS)[:step], crc)
        count -= step
    return crc


class PreparePlan(NamedTuple):
    """What a valid prepare writes: ``data`` (already cut to fit ``final_length``) at ``offset``
    over ``keep`` bytes of the committed data, the rest zeros, ``final_length`` bytes in all."""

    keep: int  # committed bytes [0, keep) survive unless overwritten by data
    offset: int
    data: memoryview
    final_length: int


def plan_prepare(
    meta: ChunkMeta | None,
    chunk_id: ChunkId,
    *,
    update_version: int,
    chunk_size: int,
    offset: int,
    data: bytes | bytearray | memoryview,
    truncate_to: int | None,
    replace: bool,
) -> PreparePlan:
    """Validate a prepare against the chunk's current ``meta`` (None: absent) and plan it.

    Raises INVALID_ARG, STORAGE_BAD_OFFSET or STORAGE_STALE_UPDATE; changes nothing."""
    check_chunk_id(chunk_id)
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ThreeFSError(Code.INVALID_ARG, f"chunk size {chunk_size} out of range")
    view = memoryview(data).cast("B")
    if meta is not None and meta.chunk_size != chunk_size:
        raise ThreeFSError(
            Code.STORAGE_BAD_OFFSET, f"chunk {chunk_id} has size {meta.chunk_size}, not {chunk_size}"
        )
    if offset < 0 or offset + len(view) > chunk_size or (replace and offset != 0):
        raise ThreeFSError(
            Code.STORAGE_BAD_OFFSET, f"write [{offset}, +{len(view)}) outside chunk size {chunk_size}"
        )
    if truncate_to is not None and not 0 <= truncate_to <= chunk_size:
        raise ThreeFSError(Code.STORAGE_BAD_OFFSET, f"truncate to {truncate_to} outside {chunk_size}")
    commit_version = meta.commit_version if meta is not None else 0
    if update_version <= commit_version or (not replace and update_version != commit_version + 1):
        raise ThreeFSError(
            Code.STORAGE_STALE_UPDATE,
            f"update version {update_version} for {chunk_id} at commit version {commit_version}",
        )
    old_length = meta.length if meta is not None else 0
    keep = 0 if replace else old_length
    if len(view) == 0:
        offset = 0
        length = keep
    else:
        length = max(keep, offset + len(view))
    final_length = length if truncate_to is None else truncate_to
    keep = min(keep, final_length)
    view = view[: max(0, final_length - offset)]
    if len(view) == 0:
        offset = 0  # a write cut away entirely by truncate_to
    if offset == 0 and len(view) >= keep:
        keep = 0  # the write covers every surviving committed byte: nothing to copy
    return PreparePlan(keep, offset, view, final_length)


def build_pending(committed: bytes | bytearray | memoryview, plan: PreparePlan) -> bytes:
    """The pending bytes of ``plan`` over the committed bytes (the in-memory way)."""
    out = bytearray(plan.final_length)
    out[: plan.keep] = committed[: plan.keep]
    out[plan.offset : plan.offset + len(plan.data)] = plan.data
    return bytes(out)


def pending_meta(
    meta: ChunkMeta | None,
    chunk_id: ChunkId,
    *,
    update_version: int,
    chain_version: int,
    chunk_size: int,
    pending_length: int,
    pending_crc32c: int,
) -> ChunkMeta:
    """The DIRTY meta after a prepare (a new chunk has commit version 0 and no committed data)."""
    if meta is None:
        meta = ChunkMeta(
            chunk_id=chunk_id,
            chunk_size=chunk_size,
            chain_version=chain_version,
            update_version=0,
            commit_version=0,
            length=0,
            crc32c=0,
        )
    return msgspec.structs.replace(
        meta,
        chain_version=chain_version,
        update_version=update_version,
        state=ChunkState.DIRTY,
        pending_length=pending_length,
        pending_crc32c=pending_crc32c,
    )


def check_commit(meta: ChunkMeta | None, chunk_id: ChunkId, update_version: int) -> bool:
    """True to commit the pending version, False when ``update_version`` is already committed;
    raises STORAGE_CHUNK_NOT_FOUND or STORAGE_STALE_UPDATE."""
    if meta is None:
        raise ThreeFSError(Code.STORAGE_CHUNK_NOT_FOUND, f"no chunk {chunk_id}")
    if update_version <= meta.commit_version:
        return False
    if meta.state != ChunkState.DIRTY or meta.update_version != update_version:
        raise ThreeFSError(
            Code.STORAGE_STALE_UPDATE,
            f"chunk {chunk_id} has no pending version {update_version} (update version "
            f"{meta.update_version}, commit version {meta.commit_version})",
        )
    return True


def committed_meta(meta: ChunkMeta) -> ChunkMeta:
    """The COMMITTED meta once the pending version of DIRTY ``meta`` is committed."""
    return msgspec.structs.replace(
        meta,
        commit_version=meta.update_version,
        length=meta.pending_length,
        crc32c=meta.pending_crc32c,
        state=ChunkState.COMMITTED,
        pending_length=0,
        pending_crc32c=0,
    )


def aborted_meta(meta: ChunkMeta, committed_chain_version: int) -> ChunkMeta:
    """The COMMITTED meta once the pending version of DIRTY ``meta`` is dropped."""
    return msgspec.structs.replace(
        meta,
        chain_version=committed_chain_version,
        update_version=meta.commit_version,
        state=ChunkState.COMMITTED,
        pending_length=0,
        pending_crc32c=0,
    )
