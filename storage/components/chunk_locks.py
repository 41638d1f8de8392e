"""Per-chunk locks: one update (or resync step) of a chunk at a time on a target.

A lock exists only while somebody holds or waits for it, so memory follows the chunks in use,
not the chunks stored. Locks are fair (trio.Lock: FIFO). A task that needs several chunks takes
them in sorted order (``hold_many``), so two such tasks never deadlock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager

import trio

from storage.store.interface import ChunkId

__all__ = ["ChunkLocks", "LockKey"]

LockKey = tuple[int, ChunkId]  # (target id, chunk)


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = trio.Lock()
        self.users = 0


class ChunkLocks:
    """Locks keyed by ``(target_id, chunk_id)``. ``on_wait(seconds)`` is called after every
    acquisition that had to wait (for metrics); an uncontended one costs no call."""

    def __init__(self, on_wait: Callable[[float], None] | None = None) -> None:
        self._entries: dict[LockKey, _Entry] = {}
        self._on_wait = on_wait
        self.waits = 0  # acquisitions that had to wait

    def __len__(self) -> int:
        """How many chunks are locked or waited for now."""
        return len(self._entries)

    def locked(self, target_id: int, chunk_id: ChunkId) -> bool:
        entry = self._entries.get((target_id, chunk_id))
        return entry is not None and entry.lock.locked()

    @asynccontextmanager
    async def hold(self, target_id: int, chunk_id: ChunkId) -> AsyncIterator[None]:
        """Hold the chunk's lock for the block. Cancellation while waiting leaves nothing held."""
        key = (target_id, chunk_id)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            try:
                entry.lock.acquire_nowait()
            except trio.WouldBlock:
                started = trio.current_time()
                await entry.lock.acquire()
                self.waits += 1
                if self._on_wait is not None:
                    self._on_wait(trio.current_time() - started)
            try:
                yield
            finally:
                entry.lock.release()
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]

    @asynccontextmanager
    async def hold_many(self, target_id: int, chunk_ids: Iterable[ChunkId]) -> AsyncIterator[None]:
        """Hold the locks of all ``chunk_ids`` (taken in sorted order) for the block."""
        async with AsyncExitStack() as stack:
            for chunk_id in sorted(set(chunk_ids)):
                await stack.enter_async_context(self.hold(target_id, chunk_id))
            yield
