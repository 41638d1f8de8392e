"""The chunk store of one storage target: the interface every implementation keeps.

A chunk is identified by ``ChunkId(inode, index)`` and holds at most ``chunk_size`` bytes. Each
chunk has durable metadata (``ChunkMeta``) and at most two versions of its data: the committed
version (what reads see) and, while an update is in flight, one pending version written
copy-on-write beside it. CRAQ drives the two-step update: ``prepare`` writes the pending version
(state DIRTY), ``commit`` makes it the committed one, ``abort`` drops it. A reader of the
committed version never sees a partial update.

All methods are synchronous and may block on disk I/O: the storage service calls them from worker
threads (``trio.to_thread``), one update per chunk at a time (the service holds the chunk lock),
while reads of other chunks and of the committed version may run concurrently. Errors are
``ThreeFSError`` with STORAGE_* codes; a failed call changes nothing.

Crash contract (SIGKILL at any point): on ``open`` a store comes back with every committed chunk
intact; a pending update is either still pending (DIRTY, with its data complete and its checksum
verified) so the chain can commit or abort it, or discarded; never half-applied.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import IntEnum

import msgspec

__all__ = [
    "ChunkId",
    "ChunkMeta",
    "ChunkState",
    "ChunkStore",
    "MIN_CHUNK_SIZE",
    "MAX_CHUNK_SIZE",
    "SpaceInfo",
]

MIN_CHUNK_SIZE = 64 << 10
MAX_CHUNK_SIZE = 64 << 20


class ChunkId(msgspec.Struct, frozen=True, order=True, array_like=True):
    """``(inode, index)``: the ``index``-th chunk of file ``inode``. Sorts by inode, then index."""

    inode: int
    index: int


class ChunkState(IntEnum):
    COMMITTED = 1  # no update in flight
    DIRTY = 2  # a pending version (``update_version`` > ``commit_version``) exists


class ChunkMeta(msgspec.Struct, frozen=True, kw_only=True):
    """Durable per-chunk metadata.

    ``commit_version`` / ``length`` / ``crc32c`` describe the committed data (``length`` 0 and
    ``crc32c`` 0 for a chunk that exists with no committed data yet). ``update_version`` is the
    newest version prepared (== ``commit_version`` when COMMITTED). ``pending_length`` /
    ``pending_crc32c`` describe the pending version while DIRTY. ``chain_version`` is the chain
    version of the last update applied. ``chunk_size`` is fixed at the chunk's first write.
    """

    chunk_id: ChunkId
    chunk_size: int
    chain_version: int
    update_version: int
    commit_version: int
    length: int
    crc32c: int
    state: ChunkState = ChunkState.COMMITTED
    pending_length: int = 0
    pending_crc32c: int = 0


class SpaceInfo(msgspec.Struct, frozen=True, kw_only=True):
    capacity_bytes: int  # of the file system holding the target
    free_bytes: int  # free on that file system
    used_bytes: int  # chunk data held by this target (committed + pending versions)
    chunk_count: int


class ChunkStore(ABC):
    """One target's chunks. Implementations: ``storage.store.disk.DiskChunkStore`` (a directory)
    and ``storage.store.mem.MemChunkStore`` (the in-memory twin for unit tests)."""

    @abstractmethod
    def get_meta(self, chunk_id: ChunkId) -> ChunkMeta | None:
        """The chunk's metadata, or None when the target has no such chunk."""

    @abstractmethod
    def read(self, chunk_id: ChunkId, offset: int, length: int) -> bytes:
        """Committed bytes ``[offset, offset + length)`` clipped to the committed length (a read
        past the end returns fewer bytes, possibly none). Raises STORAGE_CHUNK_NOT_FOUND, or
        STORAGE_BAD_OFFSET for a negative offset/length or one beyond ``chunk_size``. Reading a
        DIRTY chunk still returns the committed version (the service decides whether to answer
        CHUNK_NOT_COMMITTED)."""

    def read_cached(self, chunk_id: ChunkId, offset: int, length: int) -> bytes | None:
        """``read`` without waiting for a disk: the same bytes and errors, or None when they
        cannot be had at once (not all in the page cache, or the chunk's file not open). Cheap
        enough to call on an event loop. The default never has them."""
        return None

    def open_committed(self, chunk_id: ChunkId) -> tuple[ChunkMeta, int] | None:
        """The chunk's metadata and a new descriptor of its committed data file, for reads sent
        without copying (sendfile); the caller owns the descriptor and closes it. The file's
        bytes ``[0, meta.length)`` are those of ``meta.commit_version`` (their checksum is
        ``meta.crc32c``) and never change while the descriptor is open, whatever commits or
        removals follow. None when the chunk has no committed version, or when the store keeps
        no files (the in-memory twin): the caller then uses ``read``. Raises STORAGE_IO_ERROR."""
        return None

    @abstractmethod
    def prepare(
        self,
        chunk_id: ChunkId,
        *,
        update_version: int,
        chain_version: int,
        chunk_size: int,
        offset: int,
        data: bytes | bytearray | memoryview,
        truncate_to: int | None = None,
        replace: bool = False,
    ) -> ChunkMeta:
        """Write the pending version ``update_version`` copy-on-write and return the DIRTY meta.

        The pending data is the committed data with ``data`` written at ``offset`` (a gap past
        the committed end reads as zeros), or exactly ``data`` when ``replace`` (resync's full
        chunk replace; ``offset`` must be 0), then cut or zero-extended to ``truncate_to`` when
        given (a truncate sends no data). Creates the chunk when absent. ``update_version`` must
        be ``commit_version + 1`` (STORAGE_STALE_UPDATE otherwise; when ``replace`` any version
        newer than the committed one is accepted). Preparing again with the same
        ``update_version`` replaces the pending version (a retried forward). Raises
        STORAGE_BAD_OFFSET when ``offset + len(data)`` exceeds ``chunk_size`` or ``chunk_size``
        differs from the chunk's, STORAGE_NO_SPACE when the disk is full.
        """

    @abstractmethod
    def commit(self, chunk_id: ChunkId, update_version: int) -> ChunkMeta:
        """Make pending version ``update_version`` the committed one; returns the COMMITTED meta.
        Committing a version already committed returns the meta unchanged (idempotent).
        Raises STORAGE_CHUNK_NOT_FOUND or STORAGE_STALE_UPDATE (no such pending version)."""

    @abstractmethod
    def abort(self, chunk_id: ChunkId, update_version: int) -> ChunkMeta | None:
        """Drop pending version ``update_version`` (no-op when it is not pending); returns the
        meta after, or None when the chunk had only that pending version (it is removed)."""

    @abstractmethod
    def remove(self, chunk_id: ChunkId) -> bool:
        """Delete the chunk (all versions); False when it did not exist."""

    @abstractmethod
    def list_meta(self, inode: int | None = None) -> list[ChunkMeta]:
        """Metadata of every chunk (of ``inode`` only, when given), sorted by chunk id."""

    @abstractmethod
    def space(self) -> SpaceInfo:
        """Capacity, free and used bytes, chunk count."""

    @abstractmethod
    def close(self) -> None:
        """Release files and handles; the store is unusable afterwards."""
