"""FoundationDB engine, as 3FS uses it, through the ``foundationdb`` Python bindings.

The bindings load ``libfdb_c.so`` when the API version is selected, so ``fdb`` is imported in
the engine's constructor, never at module import: the rest of threefs works without the
library. FoundationDB provides everything natively (read versions, read-your-writes, snapshot
reads without conflicts, serializable optimistic commits); this module maps its errors and can
confine all keys under a ``prefix``, so tests and several clusters can share one database.
"""

from __future__ import annotations

from typing import Any

from threefs.errors import Code, ThreeFSError
from threefs.kv.interface import KEYSPACE_END, MAX_KEY_BYTES, Engine, KeyValue, Transaction

__all__ = ["FdbEngine", "API_VERSION", "map_fdb_error"]

API_VERSION = 710

_CODES = {
    1020: Code.KV_CONFLICT,  # not_committed
    1007: Code.KV_TXN_TOO_OLD,  # transaction_too_old
    1021: Code.KV_COMMIT_UNKNOWN,  # commit_unknown_result
    1031: Code.TIMEOUT,  # transaction_timed_out
    2101: Code.KV_TXN_TOO_LARGE,  # transaction_too_large
    2102: Code.KV_KEY_TOO_LARGE,  # key_too_large
    2103: Code.KV_VALUE_TOO_LARGE,  # value_too_large
    2004: Code.INVALID_ARG,  # key_outside_legal_range
}


def map_fdb_error(fdb_code: int, description: str, retryable: bool, action: str) -> ThreeFSError:
    """The ``ThreeFSError`` for FoundationDB error ``fdb_code``.

    Codes without a dedicated mapping become ``KV_UNAVAILABLE`` when FoundationDB calls them
    retryable (cluster trouble: recoveries, throttling, future versions) and ``INTERNAL``
    otherwise; the message keeps FoundationDB's number and description.
    """
    code = _CODES.get(fdb_code)
    if code is None:
        code = Code.KV_UNAVAILABLE if retryable else Code.INTERNAL
    return ThreeFSError(code, f"fdb {action}: error {fdb_code} ({description})")


class FdbTransaction(Transaction):
    """One ``fdb.Transaction``; keys are translated under the engine's prefix."""

    def __init__(self, engine: FdbEngine, read_only: bool) -> None:
        super().__init__(read_only=read_only, max_key_bytes=engine.max_key_bytes)
        self._engine = engine
        self._tr = engine._db.create_transaction()

    def _call(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._engine._fdb.FDBError as exc:
            raise self._engine._map(exc, action) from exc

    def _do_get(self, key: bytes, snapshot: bool) -> bytes | None:
        reader = self._tr.snapshot if snapshot else self._tr

        def read() -> bytes | None:
            value = reader.get(self._engine._prefix + key)
            return value.value if value.present() else None  # present() waits for the reply

        return self._call("get", read)

    def _do_get_range(
        self, begin: bytes, end: bytes, limit: int, reverse: bool, snapshot: bool
    ) -> list[KeyValue]:
        reader = self._tr.snapshot if snapshot else self._tr
        fdb = self._engine._fdb
        low, high = self._engine._outer_range(begin, end)
        strip = len(self._engine._prefix)

        def read() -> list[KeyValue]:
            items = reader.get_range(
                low, high, limit=limit, reverse=reverse, streaming_mode=fdb.StreamingMode.want_all
            )
            return [(bytes(item.key)[strip:], bytes(item.value)) for item in items]

        return self._call("get_range", read)

    def _do_set(self, key: bytes, value: bytes) -> None:
        self._call("set", self._tr.set, self._engine._prefix + key, value)

    def _do_clear(self, key: bytes) -> None:
        self._call("clear", self._tr.clear, self._engine._prefix + key)

    def _do_clear_range(self, begin: bytes, end: bytes) -> None:
        self._call("clear_range", self._tr.clear_range, *self._engine._outer_range(begin, end))

    def _do_add_read_conflict_range(self, begin: bytes, end: bytes) -> None:
        self._call(
            "add_read_conflict_range",
            self._tr.add_read_conflict_range,
            *self._engine._outer_range(begin, end),
        )

    def _do_commit(self) -> None:
        self._call("commit", lambda: self._tr.commit().wait())

    def _do_rollback(self) -> None:
        self._tr.cancel()


class FdbEngine(Engine):
    """A KV store in a FoundationDB cluster (``cluster_file`` None: the default cluster file).

    All keys live under ``prefix`` (empty: the whole user keyspace); FoundationDB's key limit
    counts it, so ``max_key_bytes`` is that much smaller. Raises ``KV_UNAVAILABLE``
    when the client library is missing or the database cannot be opened.
    """

    def __init__(self, cluster_file: str | None = None, *, prefix: bytes = b"") -> None:
        if prefix.startswith(KEYSPACE_END):
            raise ThreeFSError(Code.INVALID_ARG, "the fdb key prefix must not start with 0xff")
        try:
            import fdb

            fdb.api_version(API_VERSION)
            self._db = fdb.open(cluster_file)
        except Exception as exc:  # the bindings raise bare Exception, RuntimeError, OSError, FDBError
            where = cluster_file or "the default cluster file"
            raise ThreeFSError(
                Code.KV_UNAVAILABLE, f"cannot load the FoundationDB client or open {where}: {exc}"
            ) from exc
        self._fdb = fdb
        self._prefix = prefix
        self.max_key_bytes = MAX_KEY_BYTES - len(prefix)  # FoundationDB limits the full key
        self.cluster_file = cluster_file
        self._closed = False

    def _outer_range(self, begin: bytes, end: bytes) -> tuple[bytes, bytes]:
        """``[begin, end)`` of the user keyspace as a range of the database (``end`` <= 0xff)."""
        return self._prefix + begin, self._prefix + end

    def _map(self, exc: Any, action: str) -> ThreeFSError:
        retryable = bool(self._fdb.predicates.is_retryable(exc))
        return map_fdb_error(exc.code, getattr(exc, "description", str(exc)), retryable, action)

    def transaction(self, read_only: bool = False) -> FdbTransaction:
        if self._closed:
            raise ThreeFSError(Code.KV_TXN_CLOSED, "the fdb engine is closed")
        return FdbTransaction(self, read_only)

    def close(self) -> None:
        self._closed = True  # the bindings keep one network thread per process; nothing to free
