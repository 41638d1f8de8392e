"""In-memory engine: the KV twin used by unit tests, with FoundationDB's concurrency control.

Every transaction reads at the version current when it began (multi-version history per key)
and buffers its writes. Commit checks the transaction's read-conflict ranges against the write
ranges of every transaction committed after its read version, exactly as FoundationDB's
resolvers do, and raises ``KV_CONFLICT`` on an overlap. Thread-safe; not shared across processes.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter, deque

from threefs.errors import Code, ThreeFSError
from threefs.kv.interface import Engine, KeyValue, Transaction
from threefs.kv.writes import WriteBuffer, limited_read_range

__all__ = ["MemEngine"]

_Range = tuple[bytes, bytes]


def _overlaps(ranges_a: list[_Range], ranges_b: list[_Range]) -> bool:
    return any(a0 < b1 and b0 < a1 for a0, a1 in ranges_a for b0, b1 in ranges_b)


class _Store:
    """Versioned sorted map plus the log of recent commits' write ranges. Guarded by ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.version = 0
        self._keys: list[bytes] = []  # sorted; includes keys whose latest entry is a tombstone
        self._history: dict[bytes, list[tuple[int, bytes | None]]] = {}  # ascending versions
        self._commits: deque[tuple[int, list[_Range]]] = deque()
        self._active: Counter[int] = Counter()  # read versions of open transactions

    # All methods below require ``lock`` held.

    def begin(self) -> int:
        self._active[self.version] += 1
        return self.version

    def end(self, read_version: int) -> None:
        self._active[read_version] -= 1
        if not self._active[read_version]:
            del self._active[read_version]

    def value_at(self, key: bytes, version: int) -> bytes | None:
        for entry_version, value in reversed(self._history.get(key, ())):
            if entry_version <= version:
                return value
        return None

    def range_at(self, begin: bytes, end: bytes, version: int) -> list[KeyValue]:
        low = bisect.bisect_left(self._keys, begin)
        high = bisect.bisect_left(self._keys, end)
        result = []
        for key in self._keys[low:high]:
            value = self.value_at(key, version)
            if value is not None:
                result.append((key, value))
        return result

    def commit(self, read_version: int, read_ranges: list[_Range], writes: WriteBuffer) -> None:
        """Apply ``writes`` at a new version and end the transaction's read version (so pruning
        need not keep history for it), or raise ``KV_CONFLICT`` and change nothing."""
        for commit_version, write_ranges in reversed(self._commits):
            if commit_version <= read_version:
                break
            if _overlaps(read_ranges, write_ranges):
                raise ThreeFSError(
                    Code.KV_CONFLICT,
                    f"a transaction committed at version {commit_version} wrote keys this one read "
                    f"at version {read_version}",
                )
        self.end(read_version)
        self.version += 1
        version = self.version
        touched: set[bytes] = set()
        for begin, end in writes.cleared_ranges:
            low = bisect.bisect_left(self._keys, begin)
            high = bisect.bisect_left(self._keys, end)
            for key in self._keys[low:high]:
                if self._history[key][-1][1] is not None:
                    self._record(key, version, None)
                    touched.add(key)
        for key, value in writes.sets.items():
            self._record(key, version, value)
            touched.add(key)
        self._commits.append((version, writes.write_conflict_ranges()))
        self._prune(touched)

    def _record(self, key: bytes, version: int, value: bytes | None) -> None:
        history = self._history.get(key)
        if history is None:
            if value is None:
                return  # clearing an absent key changes nothing
            bisect.insort(self._keys, key)
            self._history[key] = [(version, value)]
        elif history[-1][0] == version:
            history[-1] = (version, value)
        else:
            history.append((version, value))

    def _prune(self, touched: set[bytes]) -> None:
        """Drop history no open or future transaction can read, and commits none can conflict with."""
        oldest = min(self._active) if self._active else self.version
        while self._commits and self._commits[0][0] <= oldest:
            self._commits.popleft()
        for key in touched:
            history = self._history.get(key)
            if history is None:
                continue  # a clear of a key that never existed
            keep_from = 0
            for index, (entry_version, _) in enumerate(history):
                if entry_version <= oldest:
                    keep_from = index
            del history[:keep_from]
            if len(history) == 1 and history[0][1] is None and history[0][0] <= oldest:
                del self._history[key]
                del self._keys[bisect.bisect_left(self._keys, key)]


class MemTransaction(Transaction):
    """A transaction of ``MemEngine``: snapshot reads at ``read_version``, buffered writes."""

    def __init__(self, store: _Store, read_only: bool) -> None:
        super().__init__(read_only=read_only)
        self._store = store
        with store.lock:
            self._read_version = store.begin()
        self._writes = WriteBuffer()
        self._read_ranges: list[_Range] = []

    def _do_get(self, key: bytes, snapshot: bool) -> bytes | None:
        if not snapshot:
            self._read_ranges.append((key, key + b"\x00"))
        known, value = self._writes.lookup(key)
        if known:
            return value
        with self._store.lock:
            return self._store.value_at(key, self._read_version)

    def _do_get_range(
        self, begin: bytes, end: bytes, limit: int, reverse: bool, snapshot: bool
    ) -> list[KeyValue]:
        with self._store.lock:
            committed = self._store.range_at(begin, end, self._read_version)
        result = self._writes.merge(committed, begin, end, limit, reverse)
        if not snapshot:
            self._read_ranges.append(limited_read_range(begin, end, limit, reverse, result))
        return result

    def _do_set(self, key: bytes, value: bytes) -> None:
        self._writes.set(key, value)

    def _do_clear(self, key: bytes) -> None:
        self._writes.clear(key)

    def _do_clear_range(self, begin: bytes, end: bytes) -> None:
        self._writes.clear_range(begin, end)

    def _do_add_read_conflict_range(self, begin: bytes, end: bytes) -> None:
        self._read_ranges.append((begin, end))

    def _do_commit(self) -> None:
        # On a conflict the base class calls _do_rollback, which unregisters the read version.
        with self._store.lock:
            if self._writes:
                self._store.commit(self._read_version, self._read_ranges, self._writes)
            else:  # a read-only commit is serializable at its read version: nothing to check
                self._store.end(self._read_version)

    def _do_rollback(self) -> None:
        with self._store.lock:
            self._store.end(self._read_version)


class MemEngine(Engine):
    """An empty in-memory store per instance (URL ``mem://``)."""

    local_reads = True
    commit_waits_for_disk = False

    def __init__(self) -> None:
        self._store = _Store()
        self._closed = False

    def transaction(self, read_only: bool = False) -> MemTransaction:
        if self._closed:
            raise ThreeFSError(Code.KV_TXN_CLOSED, "the mem engine is closed")
        return MemTransaction(self._store, read_only)

    def close(self) -> None:
        self._closed = True
