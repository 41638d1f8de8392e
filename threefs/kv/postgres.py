"""PostgreSQL engine (psycopg 3): a real server, SERIALIZABLE isolation, one table.

Every transaction runs at ``SERIALIZABLE`` (set on the connection, so psycopg opens each
transaction with ``BEGIN ISOLATION LEVEL SERIALIZABLE``); PostgreSQL's serializable snapshot
isolation aborts transactions that cannot be serialized with ``40001`` (or ``40P01`` on a
deadlock), which become the retryable ``KV_CONFLICT``. A lost connection becomes
``KV_UNAVAILABLE``, or ``KV_COMMIT_UNKNOWN`` when it happens during commit. Snapshot reads are
plain reads: they still take SSI predicate locks, which is conservative (more conflicts, never
fewer). Read-your-writes come from PostgreSQL itself.

Schema: ``kv(key bytea, value bytea)``. bytea compares bytewise (memcmp, then length), the order
FoundationDB uses. A btree entry holds at most ~2700 bytes, less than ``MAX_KEY_BYTES``, so the
key is indexed as ``(its first 1024 bytes, sha256(key))``: unique, and ordered by the prefix,
which range scans turn into full key order with an incremental sort. Two distinct keys would
collide only with equal 1024-byte prefixes and equal SHA-256 digests.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from threefs.errors import Code, ThreeFSError
from threefs.kv.interface import Engine, KeyValue, Transaction
from threefs.kv.pool import IdlePool

__all__ = ["PostgresEngine"]

_PREFIX = "substring(key from 1 for 1024)"
_PARAM_PREFIX = "substring({} from 1 for 1024)"


def _map_error(exc: psycopg.Error, action: str, committing: bool = False) -> ThreeFSError:
    """Translate a psycopg exception into the KV error vocabulary."""
    sqlstate = getattr(exc, "sqlstate", None) or ""
    # Class 40 (serialization failure, deadlock): the server rolled the transaction back.
    # psycopg's SerializationFailure does not derive from TransactionRollback, so match the code.
    if sqlstate == "40003":  # statement completion unknown
        code = Code.KV_COMMIT_UNKNOWN
    elif sqlstate.startswith("40") or sqlstate == "55P03":  # 55P03: lock not available
        code = Code.KV_CONFLICT
    elif isinstance(exc, psycopg.OperationalError):
        code = Code.KV_COMMIT_UNKNOWN if committing else Code.KV_UNAVAILABLE
    else:
        code = Code.INTERNAL
    return ThreeFSError(code, f"postgres {action}: {type(exc).__name__}: {exc}")


class _Statements:
    """The SQL of one table, built once."""

    def __init__(self, table: str) -> None:
        name = sql.Identifier(table)
        index = sql.Identifier(f"{table}_key_order")
        key_match = sql.SQL(
            f"{_PREFIX} = {_PARAM_PREFIX.format('%(k)s')} AND sha256(key) = sha256(%(k)s) AND key = %(k)s"
        )
        in_range = sql.SQL(
            f"{_PREFIX} >= {_PARAM_PREFIX.format('%(b)s')} AND {_PREFIX} <= {_PARAM_PREFIX.format('%(e)s')}"
            " AND key >= %(b)s AND key < %(e)s"
        )
        self.create = [
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (key bytea NOT NULL, value bytea NOT NULL)").format(name),
            sql.SQL(f"CREATE UNIQUE INDEX IF NOT EXISTS {{}} ON {{}} (({_PREFIX}), (sha256(key)))").format(
                index, name
            ),
        ]
        self.get = sql.SQL("SELECT value FROM {} WHERE {}").format(name, key_match)
        self.range_asc = sql.SQL(f"SELECT key, value FROM {{}} WHERE {{}} ORDER BY {_PREFIX}, key").format(
            name, in_range
        )
        self.range_desc = sql.SQL(
            f"SELECT key, value FROM {{}} WHERE {{}} ORDER BY {_PREFIX} DESC, key DESC"
        ).format(name, in_range)
        self.limit = sql.SQL(" LIMIT %(n)s")
        self.set = sql.SQL(
            f"INSERT INTO {{}} (key, value) VALUES (%(k)s, %(v)s) ON CONFLICT (({_PREFIX}), (sha256(key)))"
            " DO UPDATE SET value = EXCLUDED.value"
        ).format(name)
        self.clear = sql.SQL("DELETE FROM {} WHERE {}").format(name, key_match)
        self.clear_range = sql.SQL("DELETE FROM {} WHERE {}").format(name, in_range)
        self.read_conflict = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(name, in_range)


class PostgresTransaction(Transaction):
    """A transaction on one pooled connection, checked out at the first operation."""

    def __init__(self, engine: PostgresEngine, read_only: bool) -> None:
        super().__init__(read_only=read_only)
        self._engine = engine
        self._conn: psycopg.Connection | None = None

    def _execute(self, action: str, query: sql.Composed, params: dict[str, object]) -> list[tuple]:
        if self._conn is None:
            self._conn = self._engine._checkout(self.read_only)
        try:
            cursor = self._conn.execute(query, params, binary=True)
            return cursor.fetchall() if cursor.description is not None else []
        except psycopg.Error as exc:
            raise _map_error(exc, action) from exc

    def _do_get(self, key: bytes, snapshot: bool) -> bytes | None:
        rows = self._execute("get", self._engine._sql.get, {"k": key})
        return rows[0][0] if rows else None

    def _do_get_range(
        self, begin: bytes, end: bytes, limit: int, reverse: bool, snapshot: bool
    ) -> list[KeyValue]:
        statements = self._engine._sql
        query = statements.range_desc if reverse else statements.range_asc
        params: dict[str, object] = {"b": begin, "e": end}
        if limit:
            query = query + statements.limit
            params["n"] = limit
        return [(key, value) for key, value in self._execute("get_range", query, params)]

    def _do_set(self, key: bytes, value: bytes) -> None:
        self._execute("set", self._engine._sql.set, {"k": key, "v": value})

    def _do_clear(self, key: bytes) -> None:
        self._execute("clear", self._engine._sql.clear, {"k": key})

    def _do_clear_range(self, begin: bytes, end: bytes) -> None:
        self._execute("clear_range", self._engine._sql.clear_range, {"b": begin, "e": end})

    def _do_add_read_conflict_range(self, begin: bytes, end: bytes) -> None:
        self._execute("add_read_conflict_range", self._engine._sql.read_conflict, {"b": begin, "e": end})

    def _do_commit(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.commit()
        except psycopg.Error as exc:
            self._engine._release(conn)
            raise _map_error(exc, "commit", committing=True) from exc
        self._engine._checkin(conn)

    def _do_rollback(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._engine._release(conn)


def _reusable(conn: psycopg.Connection) -> bool:
    """Pool a connection only when it is healthy and outside any transaction."""
    return not conn.broken and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


class PostgresEngine(Engine):
    """A KV store in table ``table`` (created when missing) of the database ``dsn`` names.

    ``dsn`` is any libpq connection string or URL. Connections are pooled (at most ``max_idle``
    kept idle); the engine is thread-safe, each transaction uses one connection at a time.
    Raises ``KV_UNAVAILABLE`` when the server cannot be reached.
    """

    def __init__(
        self, dsn: str, *, table: str = "kv", max_idle: int = 16, connect_timeout_s: int = 10
    ) -> None:
        if not table.isidentifier():
            raise ThreeFSError(Code.INVALID_ARG, f"table must be a plain identifier, not {table!r}")
        self.dsn = dsn
        self.table = table
        self._connect_timeout_s = connect_timeout_s
        self._sql = _Statements(table)
        self._pool: IdlePool[psycopg.Connection] = IdlePool(self._connect, _reusable, max_idle)
        self._create_schema()

    def _create_schema(self) -> None:
        conn = self._connect()
        try:
            with conn.transaction():
                # Serializes concurrent creators: CREATE ... IF NOT EXISTS alone can race.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"threefs.kv:{self.table}",))
                for statement in self._sql.create:
                    conn.execute(statement)
        except psycopg.Error as exc:
            conn.close()
            raise _map_error(exc, "create schema") from exc
        self._checkin(conn)

    def _connect(self) -> psycopg.Connection:
        try:
            conn = psycopg.connect(self.dsn, autocommit=False, connect_timeout=self._connect_timeout_s)
        except psycopg.Error as exc:
            raise ThreeFSError(Code.KV_UNAVAILABLE, f"postgres connect: {exc}") from exc
        conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        return conn

    def _checkout(self, read_only: bool) -> psycopg.Connection:
        conn = self._pool.take()
        if conn.read_only != read_only:
            conn.read_only = read_only  # applies to the next BEGIN; the connection is idle
        return conn

    def _checkin(self, conn: psycopg.Connection) -> None:
        self._pool.give(conn)

    def _release(self, conn: psycopg.Connection) -> None:
        """Roll back whatever the connection holds and pool it, or close it if it is broken."""
        if not conn.broken and not conn.closed:
            try:
                conn.rollback()
            except psycopg.Error:
                conn.close()
                return
        self._checkin(conn)

    def transaction(self, read_only: bool = False) -> PostgresTransaction:
        if self._pool.closed:
            raise ThreeFSError(Code.KV_TXN_CLOSED, "the postgres engine is closed")
        return PostgresTransaction(self, read_only)

    def close(self) -> None:
        self._pool.close()
