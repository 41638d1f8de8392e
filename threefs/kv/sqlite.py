"""SQLite engine: the embedded default. One database file in WAL mode, shareable by processes.

Isolation: read-write transactions run one at a time. Threads of one engine queue on an
in-process lock (no polling), then ``BEGIN IMMEDIATE`` takes SQLite's write lock, for which
other processes wait through the busy handler. Holding the write lock from the first operation to
the end makes every read-write transaction serial, so there are no lost updates and no write
skew; a wait longer than ``busy_timeout_s`` raises the retryable ``KV_CONFLICT``. Read-only
transactions use a deferred ``BEGIN``: a WAL snapshot taken at the first read, never blocked by
writers. Snapshot reads are plain reads (writers are serial, there is nothing to relax).

Within a transaction, values already read or written are kept in memory (nothing else can
change them: writers are serial and readers see a snapshot), and writes are buffered there and
sent with one ``executemany`` per kind before anything that needs them in SQLite (a range read,
a range clear, the commit). A metadata operation reads the same directory inodes again and
again and writes a handful of keys, and each SQLite statement costs about 10 us of Python.
Savepoints follow the buffer: ``savepoint`` copies it, ``rollback_to_savepoint`` restores
the copy, and a SQL ``SAVEPOINT`` is issued only if buffered writes must reach SQLite while the
savepoint is open (writes from before it are sent first, so it still undoes only what follows).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from threefs.errors import Code, ThreeFSError
from threefs.kv.interface import Engine, KeyValue, Transaction
from threefs.kv.pool import IdlePool

__all__ = ["SqliteEngine"]

_UPSERT = "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
_DELETE = "DELETE FROM kv WHERE key = ?"
_SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN = 5, 6, 10, 13, 14


def _map_error(exc: sqlite3.Error, action: str) -> ThreeFSError:
    """Translate a sqlite3 exception into the KV error vocabulary."""
    primary = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
        code = Code.KV_CONFLICT
    elif primary == _SQLITE_CANTOPEN:
        code = Code.KV_UNAVAILABLE
    elif primary in (_SQLITE_IOERR, _SQLITE_FULL):
        code = Code.IO_ERROR
    else:
        code = Code.INTERNAL
    return ThreeFSError(code, f"sqlite {action}: {exc}")


class SqliteTransaction(Transaction):
    """A transaction on one pooled connection, begun lazily at the first operation."""

    def __init__(self, engine: SqliteEngine, read_only: bool) -> None:
        super().__init__(read_only=read_only)
        self._engine = engine
        self._conn: sqlite3.Connection | None = None
        self._holds_writer_lock = False
        self._values: dict[bytes, bytes | None] = {}  # known values (None: absent)
        self._dirty: dict[bytes, bytes | None] = {}  # buffered writes (None: delete)
        self._mark: tuple[dict[bytes, bytes | None], dict[bytes, bytes | None]] | None = None
        self._sql_savepoint = False  # a SQL SAVEPOINT matches the open mark
        self._wrote = False  # a write reached SQLite (the commit has frames to flush)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        conn = self._begin(wait=True)
        assert conn is not None
        return conn

    def _begin(self, *, wait: bool) -> sqlite3.Connection | None:
        """Check out a connection and BEGIN on it (a read-write transaction first takes this
        engine's writer lock, then SQLite's). Without ``wait``: None, with nothing taken, when
        either lock is held elsewhere (SQLite's is asked with a busy timeout of 0)."""
        engine = self._engine
        if not self.read_only:
            if engine._sync_error is not None:
                raise engine._sync_error
            if not engine._writer_lock.acquire(timeout=engine.busy_timeout_s if wait else 0):
                if not wait:
                    return None
                raise ThreeFSError(
                    Code.KV_CONFLICT,
                    f"another read-write transaction held the write lock over {engine.busy_timeout_s}s",
                )
            self._holds_writer_lock = True
        try:
            conn = engine._checkout()
        except BaseException:
            self._release_writer_lock()
            raise
        try:
            if wait or self.read_only:  # a read transaction never waits in WAL mode
                conn.execute("BEGIN" if self.read_only else "BEGIN IMMEDIATE")
            else:
                # another process may hold the file's write lock: ask without waiting for it
                conn.execute("PRAGMA busy_timeout=0")
                try:
                    conn.execute("BEGIN IMMEDIATE")
                finally:
                    conn.execute(f"PRAGMA busy_timeout={int(engine.busy_timeout_s * 1000)}")
        except sqlite3.Error as exc:
            engine._checkin(conn)
            self._release_writer_lock()
            busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
            if not wait and busy:
                return None
            raise _map_error(exc, "begin") from exc
        self._conn = conn
        return conn

    def begin(self) -> None:
        self._check_open()
        self._engine_call(self._connection)

    def try_begin(self) -> bool:
        self._check_open()
        if self._conn is not None:
            return True
        return self._engine_call(lambda: self._begin(wait=False)) is not None

    def _execute(self, action: str, sql: str, params: tuple[object, ...]) -> list[tuple]:
        conn = self._connection()
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _map_error(exc, action) from exc

    def _do_get(self, key: bytes, snapshot: bool) -> bytes | None:
        values = self._values
        if key in values:
            return values[key]
        rows = self._execute("get", "SELECT value FROM kv WHERE key = ?", (key,))
        value = values[key] = rows[0][0] if rows else None
        return value

    def _do_get_range(
        self, begin: bytes, end: bytes, limit: int, reverse: bool, snapshot: bool
    ) -> list[KeyValue]:
        self._flush()
        order = "DESC" if reverse else "ASC"
        sql = f"SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key {order} LIMIT ?"
        return [(k, v) for k, v in self._execute("get_range", sql, (begin, end, limit or -1))]

    def _do_set(self, key: bytes, value: bytes) -> None:
        if self._conn is None:
            self._connection()  # the write lock from the first operation on
        self._values[key] = self._dirty[key] = value

    def _do_clear(self, key: bytes) -> None:
        if self._conn is None:
            self._connection()
        self._values[key] = self._dirty[key] = None

    def _do_clear_range(self, begin: bytes, end: bytes) -> None:
        self._flush()
        self._execute("clear_range", "DELETE FROM kv WHERE key >= ? AND key < ?", (begin, end))
        self._wrote = True
        self._values = {k: v for k, v in self._values.items() if not begin <= k < end}

    def _do_add_read_conflict_range(self, begin: bytes, end: bytes) -> None:
        self._connection()  # read-write transactions are serial: holding the lock is enough

    def _flush(self) -> None:
        """Send the buffered writes to SQLite (first those from before an open savepoint, then
        the SQL savepoint, then the rest)."""
        mark = self._mark
        if mark is not None and not self._sql_savepoint:
            if not self._dirty:
                return
            self._write(mark[1])
            mark[1].clear()
            self._execute("savepoint", "SAVEPOINT op", ())
            self._sql_savepoint = True
        self._write(self._dirty)
        self._dirty.clear()

    def _write(self, dirty: dict[bytes, bytes | None]) -> None:
        if not dirty:
            return
        conn = self._connection()
        self._wrote = True
        upserts = [(k, v) for k, v in dirty.items() if v is not None]
        deletes = [(k,) for k, v in dirty.items() if v is None]
        try:
            if upserts:
                conn.executemany(_UPSERT, upserts)
            if deletes:
                conn.executemany(_DELETE, deletes)
        except sqlite3.Error as exc:
            raise _map_error(exc, "write") from exc

    def savepoint(self) -> None:
        self._check_open()
        if self._mark is not None:
            raise ThreeFSError(Code.INVALID_ARG, "a savepoint is already open (they do not nest)")
        self._mark = (dict(self._values), dict(self._dirty))
        self._sql_savepoint = False

    def release_savepoint(self) -> None:
        self._check_open()
        self._require_mark()
        if self._sql_savepoint:
            self._engine_call(self._execute, "release savepoint", "RELEASE op", ())
        self._mark, self._sql_savepoint = None, False

    def rollback_to_savepoint(self) -> None:
        self._check_open()
        mark = self._require_mark()
        if self._sql_savepoint:
            self._engine_call(self._execute, "rollback to savepoint", "ROLLBACK TO op", ())
            self._engine_call(self._execute, "release savepoint", "RELEASE op", ())
        self._values, self._dirty = mark
        self._mark, self._sql_savepoint = None, False

    def _require_mark(self) -> tuple[dict[bytes, bytes | None], dict[bytes, bytes | None]]:
        if self._mark is None:
            raise ThreeFSError(Code.INVALID_ARG, "no savepoint is open")
        return self._mark

    def _do_commit(self) -> None:
        self._engine.sync(self._commit_unsynced())

    def _do_commit_unsynced(self) -> int | None:
        return self._commit_unsynced()

    def _commit_unsynced(self) -> int | None:
        """COMMIT; the ticket of a read-write commit whose WAL frames the engine must still
        flush (``SqliteEngine.sync``), else None."""
        if self._conn is None:
            return None  # never begun: nothing read, nothing written
        self._mark = None  # an open savepoint is kept, as by COMMIT itself
        self._flush()
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _map_error(exc, "commit") from exc
        ticket = self._engine._count_commit() if self._wrote else None
        self._finish()
        return ticket

    def _do_rollback(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # sqlite may have rolled back already (e.g. after SQLITE_FULL)
        self._finish()

    def _finish(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._engine._checkin(conn)
        self._release_writer_lock()

    def _release_writer_lock(self) -> None:
        if self._holds_writer_lock:
            self._holds_writer_lock = False
            self._engine._writer_lock.release()


class SqliteEngine(Engine):
    """A KV store in one SQLite file (created when missing), table ``kv`` ``WITHOUT ROWID``.

    ``busy_timeout_s`` bounds every wait for the write lock (threads and processes);
    ``synchronous`` is SQLite's ``PRAGMA synchronous`` (FULL: a commit survives power loss).

    FULL is done by the engine rather than by SQLite: connections run with NORMAL (a commit
    writes its WAL frames, SQLite syncs only at checkpoints and WAL resets) and the engine
    fsyncs the WAL file itself before ``commit`` returns. The durability is FULL's, and the
    flush can be separated from the commit (``commit_unsynced`` + ``sync``): the write lock is
    released before the fsync, so the next transaction runs while the disk flushes this one,
    and one fsync covers every commit before it. Readers may see a commit before its fsync
    ends (as on a local file system); its writer is answered only after.
    """

    serializes_writers = True
    local_reads = True
    supports_savepoints = True

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 5.0, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in _SYNCHRONOUS_MODES:
            raise ThreeFSError(
                Code.INVALID_ARG, f"synchronous must be one of {_SYNCHRONOUS_MODES}, not {synchronous!r}"
            )
        if busy_timeout_s <= 0:
            raise ThreeFSError(Code.INVALID_ARG, f"busy_timeout_s must be > 0, not {busy_timeout_s}")
        self.path = Path(path)
        self.busy_timeout_s = float(busy_timeout_s)
        self._synchronous = synchronous.upper()
        # OFF never syncs; NORMAL in WAL mode syncs only at checkpoints (a commit may be lost to
        # a power cut, never to a process crash)
        self.commit_waits_for_disk = self._synchronous in ("FULL", "EXTRA")
        self._flushes_wal = self.defers_flush = self._synchronous == "FULL"  # FULL by our own fsync
        self._writer_lock = threading.Lock()
        self._commits = 0  # read-write commits so far (counted under the writer lock)
        self._synced = 0  # commits known to be on disk
        self._sync_lock = threading.Lock()  # one fsync at a time; later callers share it
        self._sync_error: ThreeFSError | None = None  # sticky: a failed flush ends all writes
        self._wal_fd: int | None = None
        self._pool: IdlePool[sqlite3.Connection] = IdlePool(self._connect, lambda c: not c.in_transaction)
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"
            )
        except sqlite3.Error as exc:
            conn.close()
            raise _map_error(exc, f"open {self.path}") from exc
        self._pool.give(conn)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA synchronous={'NORMAL' if self._flushes_wal else self._synchronous}")
        except sqlite3.Error as exc:
            raise _map_error(exc, f"open {self.path}") from exc
        return conn

    def _checkout(self) -> sqlite3.Connection:
        return self._pool.take()

    def _checkin(self, conn: sqlite3.Connection) -> None:
        self._pool.give(conn)

    def transaction(self, read_only: bool = False) -> SqliteTransaction:
        if self._pool.closed:
            raise ThreeFSError(Code.KV_TXN_CLOSED, f"the sqlite engine for {self.path} is closed")
        return SqliteTransaction(self, read_only)

    def close(self) -> None:
        self._pool.close()
        with self._sync_lock:
            if self._wal_fd is not None:
                os.close(self._wal_fd)
                self._wal_fd = None

    def _count_commit(self) -> int | None:
        """The ticket of a commit just made under the writer lock (None: nothing to flush)."""
        if not self._flushes_wal:
            return None
        self._commits += 1
        return self._commits

    def sync(self, ticket: int | None) -> None:
        if ticket is None or self._synced >= ticket:
            return
        with self._sync_lock:
            if self._synced >= ticket:
                return  # a flush that began after this commit has ended meanwhile
            if self._sync_error is not None:
                raise self._sync_error
            covered = self._commits  # every commit counted so far has written its frames
            try:
                self._flush_wal()
            except OSError as exc:
                self._sync_error = ThreeFSError(
                    Code.IO_ERROR,
                    f"sqlite: flushing {self.path}-wal to disk failed ({exc}); commits already "
                    "visible may be lost, so this engine refuses writes until it is reopened",
                )
                raise self._sync_error from exc
            self._synced = covered

    def _flush_wal(self) -> None:
        """fsync the WAL file (and, the first time, its directory, which holds its name). A
        WAL that is gone was checkpointed into the database file and synced there first."""
        wal = f"{self.path}-wal"
        for _ in range(2):  # a second round if SQLite replaced the file meanwhile
            if self._wal_fd is None:
                try:
                    self._wal_fd = os.open(wal, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    return
                directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
            os.fsync(self._wal_fd)
            try:
                if os.stat(wal).st_ino == os.fstat(self._wal_fd).st_ino:
                    return
            except FileNotFoundError:
                return
            os.close(self._wal_fd)
            self._wal_fd = None
