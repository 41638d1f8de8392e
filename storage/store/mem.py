"""MemChunkStore: the in-memory twin of ``DiskChunkStore``, for unit tests of the layers above.

Same semantics as the disk store (both apply ``storage.store.rules``), nothing durable. One lock
guards everything, so it is safe to call from worker threads. ``capacity_bytes`` lets a test run
the target out of space (STORAGE_NO_SPACE).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from crc32c import crc32c

from storage.store import rules
from storage.store.interface import ChunkId, ChunkMeta, ChunkState, ChunkStore, SpaceInfo
from threefs.errors import Code, ThreeFSError

__all__ = ["MemChunkStore"]


@dataclass(slots=True)
class _Chunk:
    meta: ChunkMeta
    committed_chain_version: int  # restored by abort
    data: bytes  # committed
    pending: bytes | None  # while DIRTY


class MemChunkStore(ChunkStore):
    """Chunks in a dict. ``capacity_bytes`` is what ``space()`` reports as capacity; a prepare
    that would push used bytes (committed + pending) beyond it raises STORAGE_NO_SPACE."""

    def __init__(self, *, capacity_bytes: int = 1 << 40) -> None:
        self._capacity = capacity_bytes
        self._lock = threading.Lock()
        self._chunks: dict[ChunkId, _Chunk] = {}
        self._used = 0
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise ThreeFSError(Code.STORAGE_IO_ERROR, "chunk store is closed")

    def get_meta(self, chunk_id: ChunkId) -> ChunkMeta | None:
        with self._lock:
            self._check_open()
            chunk = self._chunks.get(chunk_id)
            return chunk.meta if chunk is not None else None

    def read(self, chunk_id: ChunkId, offset: int, length: int) -> bytes:
        with self._lock:
            self._check_open()
            chunk = self._chunks.get(chunk_id)
            if chunk is None:
                raise ThreeFSError(Code.STORAGE_CHUNK_NOT_FOUND, f"no chunk {chunk_id}")
            count = rules.check_read(chunk.meta, offset, length)
            return chunk.data[offset : offset + count] if count else b""

    def read_cached(self, chunk_id: ChunkId, offset: int, length: int) -> bytes | None:
        return self.read(chunk_id, offset, length)  # memory: never waits

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
        with self._lock:
            self._check_open()
            chunk = self._chunks.get(chunk_id)
            meta = chunk.meta if chunk is not None else None
            plan = rules.plan_prepare(
                meta,
                chunk_id,
                update_version=update_version,
                chunk_size=chunk_size,
                offset=offset,
                data=data,
                truncate_to=truncate_to,
                replace=replace,
            )
            old_pending = meta.pending_length if meta is not None and meta.state == ChunkState.DIRTY else 0
            if self._used - old_pending + plan.final_length > self._capacity:
                raise ThreeFSError(Code.STORAGE_NO_SPACE, f"no room for {plan.final_length} bytes")
            pending = rules.build_pending(chunk.data if chunk is not None else b"", plan)
            new_meta = rules.pending_meta(
                meta,
                chunk_id,
                update_version=update_version,
                chain_version=chain_version,
                chunk_size=chunk_size,
                pending_length=len(pending),
                pending_crc32c=crc32c(pending),
            )
            if chunk is None:
                self._chunks[chunk_id] = _Chunk(new_meta, chain_version, b"", pending)
            else:
                chunk.meta, chunk.pending = new_meta, pending
            self._used += len(pending) - old_pending
            return new_meta

    def commit(self, chunk_id: ChunkId, update_version: int) -> ChunkMeta:
        with self._lock:
            self._check_open()
            chunk = self._chunks.get(chunk_id)
            if chunk is None:
                raise ThreeFSError(Code.STORAGE_CHUNK_NOT_FOUND, f"no chunk {chunk_id}")
            if not rules.check_commit(chunk.meta, chunk_id, update_version):
                return chunk.meta
            self._used -= len(chunk.data)
            chunk.meta = rules.committed_meta(chunk.meta)
            chunk.data, chunk.pending = chunk.pending or b"", None
            chunk.committed_chain_version = chunk.meta.chain_version
            return chunk.meta

    def abort(self, chunk_id: ChunkId, update_version: int) -> ChunkMeta | None:
        with self._lock:
            self._check_open()
            chunk = self._chunks.get(chunk_id)
            if chunk is None:
                return None
            meta = chunk.meta
            if meta.state != ChunkState.DIRTY or meta.update_version != update_version:
                return meta
            self._used -= meta.pending_length
            if meta.commit_version == 0:
                del self._chunks[chunk_id]
                return None
            chunk.meta = rules.aborted_meta(meta, chunk.committed_chain_version)
            chunk.pending = None
            return chunk.meta

    def remove(self, chunk_id: ChunkId) -> bool:
        with self._lock:
            self._check_open()
            chunk = self._chunks.pop(chunk_id, None)
            if chunk is None:
                return False
            self._used -= len(chunk.data) + (len(chunk.pending) if chunk.pending is not None else 0)
            return True

    def list_meta(self, inode: int | None = None) -> list[ChunkMeta]:
        with self._lock:
            self._check_open()
            ids = sorted(cid for cid in self._chunks if inode is None or cid.inode == inode)
            return [self._chunks[cid].meta for cid in ids]

    def space(self) -> SpaceInfo:
        with self._lock:
            self._check_open()
            return SpaceInfo(
                capacity_bytes=self._capacity,
                free_bytes=max(0, self._capacity - self._used),
                used_bytes=self._used,
                chunk_count=len(self._chunks),
            )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._chunks.clear()
            self._used = 0
