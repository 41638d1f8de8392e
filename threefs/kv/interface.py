"""The transactional ordered key-value interface every engine implements (FoundationDB semantics).

Keys and values are ``bytes``, ordered bytewise (memcmp, a shorter key before its extensions).
Keys starting with ``0xff`` are reserved, as FoundationDB reserves them for its system keyspace;
range ends beyond ``b"\\xff"`` are clamped to it, so ``(b"", b"\\xff")`` is the whole keyspace.

The methods are synchronous: the sqlite and psycopg drivers are synchronous, and metadata
transactions are short. Trio code runs a whole transaction in a worker thread with
``trio.to_thread.run_sync`` (``threefs.kv.retry.run_transaction_async`` does that), never one
operation at a time, so a transaction belongs to one thread from start to end.

Contract shared by all engines (the conformance suite in ``tests/kv`` checks it):

- Reads see the state as of the transaction's read version plus the transaction's own
  uncommitted writes (read-your-writes), including range reads over a mix of both.
- Commits are serializable. A transaction that cannot be serialized fails with the retryable
  ``KV_CONFLICT``, at commit or (for some engines) at the operation that detects it.
- ``snapshot_get``/``snapshot_get_range`` read like ``get``/``get_range`` but, where the engine
  tracks read conflicts itself (mem, fdb), add none.
- Size limits match FoundationDB; a write over a limit raises at ``set()`` time and changes
  nothing in the transaction.
- After ``commit()`` or ``rollback()`` every operation raises ``KV_TXN_CLOSED``, except
  ``rollback()`` itself, which is idempotent so cleanup paths may always call it.
- When the engine itself fails an operation (conflict, unavailable, commit unknown), the
  transaction is rolled back and closed before the error propagates.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from threefs.errors import Code, ThreeFSError

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_VALUE_BYTES",
    "MAX_TXN_BYTES",
    "KEYSPACE_END",
    "Engine",
    "Transaction",
    "KeyValue",
]

MAX_KEY_BYTES = 10_000
"""Longest key, in bytes (FoundationDB's limit)."""

MAX_VALUE_BYTES = 100_000
"""Longest value, in bytes (FoundationDB's limit)."""

MAX_TXN_BYTES = 10_000_000
"""Most bytes of keys and values one transaction may write (FoundationDB's limit)."""

KEYSPACE_END = b"\xff"
"""First key past the user keyspace; no user key is at or after it."""

KeyValue = tuple[bytes, bytes]
_T = TypeVar("_T")


def _check_bytes(what: str, data: object) -> bytes:
    if not isinstance(data, bytes):
        raise ThreeFSError(Code.INVALID_ARG, f"{what} must be bytes, not {type(data).__name__}")
    return data


def _check_write_key(key: object, max_key_bytes: int) -> bytes:
    key = _check_bytes("key", key)
    if len(key) > max_key_bytes:
        raise ThreeFSError(Code.KV_KEY_TOO_LARGE, f"key of {len(key)} bytes exceeds {max_key_bytes}")
    if key.startswith(KEYSPACE_END):
        raise ThreeFSError(Code.INVALID_ARG, "keys starting with 0xff are reserved")
    return key


class Transaction(ABC):
    """One transaction. Public methods validate, then call the engine's ``_do_*`` hooks.

    Use it as a context manager or end it with ``commit()``/``rollback()``; leaving the ``with``
    block without committing rolls back. Not thread-safe: one thread drives a transaction.
    """

    def __init__(self, *, read_only: bool, max_key_bytes: int = MAX_KEY_BYTES) -> None:
        self._read_only = read_only
        self._max_key_bytes = max_key_bytes
        self._closed = False
        self._written_bytes = 0

    # ---- engine hooks -------------------------------------------------------------------
    # Arguments are validated; ranges are non-empty and clamped to the user keyspace.

    @abstractmethod
    def _do_get(self, key: bytes, snapshot: bool) -> bytes | None: ...

    @abstractmethod
    def _do_get_range(
        self, begin: bytes, end: bytes, limit: int, reverse: bool, snapshot: bool
    ) -> list[KeyValue]: ...

    @abstractmethod
    def _do_set(self, key: bytes, value: bytes) -> None: ...

    @abstractmethod
    def _do_clear(self, key: bytes) -> None: ...

    @abstractmethod
    def _do_clear_range(self, begin: bytes, end: bytes) -> None: ...

    def _do_add_read_conflict_range(self, begin: bytes, end: bytes) -> None:
        """Engines that serialize through locks or predicates may read the range instead."""
        self._do_get_range(begin, end, 0, False, False)

    @abstractmethod
    def _do_commit(self) -> None: ...

    @abstractmethod
    def _do_rollback(self) -> None:
        """Release everything; must not raise for an engine that already failed."""

    # ---- public API ---------------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        """True when writes are refused with ``KV_READ_ONLY``."""
        return self._read_only

    @property
    def closed(self) -> bool:
        """True after commit or rollback (successful or not)."""
        return self._closed

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, or None when it is absent. Adds ``key`` to the read conflicts."""
        return self._get(key, snapshot=False)

    def snapshot_get(self, key: bytes) -> bytes | None:
        """Like ``get`` but adds no read conflict."""
        return self._get(key, snapshot=True)

    def get_range(self, begin: bytes, end: bytes, limit: int = 0, reverse: bool = False) -> list[KeyValue]:
        """The pairs with ``begin <= key < end`` in key order (descending when ``reverse``).

        ``limit`` > 0 returns at most that many pairs, counted from ``begin`` (or from ``end``
        when ``reverse``); 0 means no limit. ``begin >= end`` gives an empty list.
        """
        return self._range(begin, end, limit, reverse, snapshot=False)

    def snapshot_get_range(
        self, begin: bytes, end: bytes, limit: int = 0, reverse: bool = False
    ) -> list[KeyValue]:
        """Like ``get_range`` but adds no read conflict."""
        return self._range(begin, end, limit, reverse, snapshot=True)

    def set(self, key: bytes, value: bytes) -> None:
        """Write ``value`` under ``key``, visible to this transaction at once, to others at commit.

        Raises ``KV_KEY_TOO_LARGE``/``KV_VALUE_TOO_LARGE`` for one byte over the limits
        (``MAX_KEY_BYTES`` or the engine's smaller ``max_key_bytes``; ``MAX_VALUE_BYTES``),
        ``KV_TXN_TOO_LARGE`` when the transaction's writes would pass ``MAX_TXN_BYTES``,
        ``KV_READ_ONLY`` in a read-only transaction; in all these cases nothing changes.
        """
        self._check_writable()
        key = _check_write_key(key, self._max_key_bytes)
        value = _check_bytes("value", value)
        if len(value) > MAX_VALUE_BYTES:
            raise ThreeFSError(
                Code.KV_VALUE_TOO_LARGE, f"value of {len(value)} bytes exceeds {MAX_VALUE_BYTES}"
            )
        self._account(len(key) + len(value))
        self._engine_call(self._do_set, key, value)

    def clear(self, key: bytes) -> None:
        """Remove ``key`` if present."""
        self._check_writable()
        key = _check_write_key(key, self._max_key_bytes)
        self._account(len(key))
        self._engine_call(self._do_clear, key)

    def clear_range(self, begin: bytes, end: bytes) -> None:
        """Remove every key with ``begin <= key < end``; nothing when ``begin >= end``."""
        self._check_writable()
        begin, end = self._check_range(begin, end)
        self._account(len(begin) + len(end))
        if begin < end:
            self._engine_call(self._do_clear_range, begin, end)

    def add_read_conflict_key(self, key: bytes) -> None:
        """Make the commit fail if ``key`` is changed by another transaction meanwhile."""
        self._check_open()
        key = _check_bytes("key", key)
        self.add_read_conflict_range(key, key + b"\x00")

    def add_read_conflict_range(self, begin: bytes, end: bytes) -> None:
        """Make the commit fail if a key in ``[begin, end)`` is changed by another transaction."""
        self._check_open()
        begin, end = self._check_range(begin, end)
        if begin < end:
            self._engine_call(self._do_add_read_conflict_range, begin, end)

    def commit(self) -> None:
        """Make the writes durable and visible atomically, or raise and change nothing.

        Raises ``KV_CONFLICT`` (retryable) when the transaction cannot be serialized,
        ``KV_COMMIT_UNKNOWN`` when the connection failed mid-commit, ``KV_TXN_CLOSED`` when the
        transaction was already ended. The transaction is closed afterwards in every case.
        """
        self._check_open()
        try:
            self._do_commit()
        except BaseException:
            self._rollback_quietly()
            raise
        self._closed = True

    def commit_unsynced(self) -> int | None:
        """``commit``, except that it may return before the writes are durable: they are
        visible at once, and durable once the engine's ``sync(ticket)`` returns for the ticket
        returned here (None: durable already, as after ``commit``). Group commit uses it so
        the next batch runs while the disk flushes this one. Same errors as ``commit``."""
        self._check_open()
        try:
            ticket = self._do_commit_unsynced()
        except BaseException:
            self._rollback_quietly()
            raise
        self._closed = True
        return ticket

    def _do_commit_unsynced(self) -> int | None:
        """Engines whose commits can leave their flush for later override this."""
        self._do_commit()
        return None

    def begin(self) -> None:
        """Start the transaction now rather than at its first operation: an engine that takes
        locks when a transaction starts (sqlite's write lock) takes them here, waiting as its
        first operation would. A no-op where nothing is taken up front. Lets a caller wait for
        the locks in a worker thread and then run the operations wherever it likes."""
        self._check_open()

    def try_begin(self) -> bool:
        """``begin`` if that needs no wait; False, with nothing taken, when another transaction
        (of this process or another) holds what it would wait for. True where ``begin`` never
        waits."""
        self.begin()
        return True

    # ---- savepoints (engines with ``supports_savepoints``) ---------------------------------

    def savepoint(self) -> None:
        """Mark a point that ``rollback_to_savepoint`` can return to (one level, not nested).
        Raises NOT_IMPLEMENTED on engines without ``supports_savepoints``."""
        raise ThreeFSError(Code.NOT_IMPLEMENTED, f"{type(self).__name__} has no savepoints")

    def release_savepoint(self) -> None:
        """Keep everything done since ``savepoint`` and forget the mark."""
        raise ThreeFSError(Code.NOT_IMPLEMENTED, f"{type(self).__name__} has no savepoints")

    def rollback_to_savepoint(self) -> None:
        """Undo every write since ``savepoint`` and forget the mark; the transaction goes on."""
        raise ThreeFSError(Code.NOT_IMPLEMENTED, f"{type(self).__name__} has no savepoints")

    def rollback(self) -> None:
        """Discard the writes and release the transaction; a no-op when already closed."""
        if not self._closed:
            self._closed = True
            self._do_rollback()

    def __enter__(self) -> Transaction:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.rollback()

    # ---- helpers ------------------------------------------------------------------------

    def _get(self, key: bytes, snapshot: bool) -> bytes | None:
        self._check_open()
        key = _check_bytes("key", key)
        if key.startswith(KEYSPACE_END):
            return None  # the reserved keyspace holds no user data
        return self._engine_call(self._do_get, key, snapshot)

    def _range(self, begin: bytes, end: bytes, limit: int, reverse: bool, snapshot: bool) -> list[KeyValue]:
        self._check_open()
        begin, end = self._check_range(begin, end)
        if not isinstance(limit, int) or limit < 0:
            raise ThreeFSError(Code.INVALID_ARG, f"limit must be an int >= 0, not {limit!r}")
        if begin >= end:
            return []
        return self._engine_call(self._do_get_range, begin, end, limit, bool(reverse), snapshot)

    @staticmethod
    def _check_range(begin: object, end: object) -> tuple[bytes, bytes]:
        begin = _check_bytes("begin", begin)
        end = _check_bytes("end", end)
        return begin, min(end, KEYSPACE_END)

    def _check_open(self) -> None:
        if self._closed:
            raise ThreeFSError(Code.KV_TXN_CLOSED, "the transaction was already committed or rolled back")

    def _check_writable(self) -> None:
        self._check_open()
        if self._read_only:
            raise ThreeFSError(Code.KV_READ_ONLY, "write in a read-only transaction")

    def _account(self, nbytes: int) -> None:
        if self._written_bytes + nbytes > MAX_TXN_BYTES:
            raise ThreeFSError(
                Code.KV_TXN_TOO_LARGE,
                f"transaction would write {self._written_bytes + nbytes} bytes, over {MAX_TXN_BYTES}",
            )
        self._written_bytes += nbytes

    def _engine_call(self, hook: Callable[..., _T], *args: object) -> _T:
        """Run an engine hook; an engine failure rolls back and closes the transaction."""
        try:
            return hook(*args)
        except ThreeFSError:
            self._rollback_quietly()
            raise

    def _rollback_quietly(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._do_rollback()
            except ThreeFSError:
                pass  # the engine already failed; the original error is the one to report


class Engine(ABC):
    """A KV store: a factory of transactions. Thread-safe; close it when done.

    ``serializes_writers`` is True for engines that run read-write transactions one at a time
    (sqlite): a second one waits (up to the engine's lock timeout, then ``KV_CONFLICT``) for
    the first to end rather than failing at commit, so one thread must not hold two.
    ``max_key_bytes`` is ``MAX_KEY_BYTES`` except where the engine stores keys under a prefix
    of its own (fdb with ``prefix``), which FoundationDB's limit also counts.
    ``local_reads`` is True for engines whose read-only transactions touch only local memory or
    a local file and take microseconds (mem, sqlite): an event loop may run them inline instead
    of in a worker thread, whose GIL hand-off per query costs more than the query.
    ``commit_waits_for_disk``: a commit flushes to stable storage (an fsync) before it returns,
    so an event loop should commit in a worker thread.
    ``defers_flush``: ``Transaction.commit_unsynced`` returns before the fsync, which
    ``sync`` then does (sqlite with FULL); elsewhere it is ``commit``.
    ``supports_savepoints``: transactions implement ``savepoint`` / ``release_savepoint`` /
    ``rollback_to_savepoint`` (sqlite), so several independent operations can share one
    transaction, each undone alone when it fails (group commit).
    """

    serializes_writers: bool = False
    local_reads: bool = False
    supports_savepoints: bool = False
    commit_waits_for_disk: bool = True
    defers_flush: bool = False
    max_key_bytes: int = MAX_KEY_BYTES

    @abstractmethod
    def transaction(self, read_only: bool = False) -> Transaction:
        """Begin a transaction. Raises ``KV_TXN_CLOSED`` when the engine is closed."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and files; idempotent. Open transactions must be ended first."""

    def sync(self, ticket: int | None) -> None:
        """Return once the commit that gave ``ticket`` (``Transaction.commit_unsynced``) is
        durable; one flush covers every commit before it. Blocks (call it from a worker thread).
        Raises IO_ERROR when the flush fails; such an engine refuses every later write, because
        commits it already showed to readers may be lost. Engines without ``defers_flush``
        hand out no tickets, so there is nothing to wait for."""
        return None

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
