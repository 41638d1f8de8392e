"""A stand-in for the ``fdb`` bindings, backed by the mem engine, to exercise ``threefs.kv.fdb``.

It speaks the slice of the bindings' API the adapter uses (futures, ``snapshot``, ``FDBError``
codes, ``predicates.is_retryable``), so the conformance suite runs the adapter's key prefixing
and error mapping where no FoundationDB cluster exists. Like FoundationDB it limits the full
key (prefix included) to 10,000 bytes. It proves nothing about FoundationDB itself.
"""

from __future__ import annotations

from types import SimpleNamespace

from threefs.errors import Code, ThreeFSError
from threefs.kv.mem import MemEngine

_FDB_CODES = {
    Code.KV_CONFLICT: 1020,
    Code.KV_KEY_TOO_LARGE: 2102,
    Code.KV_VALUE_TOO_LARGE: 2103,
    Code.KV_TXN_TOO_LARGE: 2101,
    Code.INVALID_ARG: 2004,
}
_RETRYABLE = {1020, 1007, 1021, 1037}


class FDBError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code
        self.description = f"fake error {code}"


class _Predicates:
    @staticmethod
    def is_retryable(error: FDBError) -> bool:
        return error.code in _RETRYABLE


def _translated(fn, *args):
    try:
        return fn(*args)
    except ThreeFSError as exc:
        raise FDBError(_FDB_CODES.get(exc.code, 4100)) from exc


class _Value:
    def __init__(self, value: bytes | None) -> None:
        self.value = value

    def present(self) -> bool:
        return self.value is not None


class _Reader:
    def __init__(self, txn, snapshot: bool) -> None:
        self._txn = txn
        self._snapshot = snapshot

    def get(self, key: bytes) -> _Value:
        getter = self._txn.snapshot_get if self._snapshot else self._txn.get
        return _Value(_translated(getter, key))

    def get_range(self, begin: bytes, end: bytes, limit: int = 0, reverse: bool = False, streaming_mode=None):
        if begin >= b"\xff" or end > b"\xff":
            raise FDBError(2004)  # key_outside_legal_range, as the real cluster answers
        reader = self._txn.snapshot_get_range if self._snapshot else self._txn.get_range
        pairs = _translated(reader, begin, end, limit, reverse)
        return [SimpleNamespace(key=key, value=value) for key, value in pairs]


class _Transaction(_Reader):
    def __init__(self, txn) -> None:
        super().__init__(txn, snapshot=False)
        self.snapshot = _Reader(txn, snapshot=True)

    def set(self, key: bytes, value: bytes) -> None:
        _translated(self._txn.set, key, value)

    def clear(self, key: bytes) -> None:
        _translated(self._txn.clear, key)

    def clear_range(self, begin: bytes, end: bytes) -> None:
        _translated(self._txn.clear_range, begin, end)

    def add_read_conflict_range(self, begin: bytes, end: bytes) -> None:
        _translated(self._txn.add_read_conflict_range, begin, end)

    def commit(self) -> SimpleNamespace:
        return SimpleNamespace(wait=lambda: _translated(self._txn.commit))

    def cancel(self) -> None:
        self._txn.rollback()


class _Database:
    def __init__(self) -> None:
        self._engine = MemEngine()

    def create_transaction(self) -> _Transaction:
        return _Transaction(self._engine.transaction())


def make_module() -> SimpleNamespace:
    """A fresh fake ``fdb`` module; each ``open()`` is a new empty database."""
    return SimpleNamespace(
        api_version=lambda version: None,
        open=lambda cluster_file=None: _Database(),
        FDBError=FDBError,
        predicates=_Predicates(),
        StreamingMode=SimpleNamespace(want_all=-2),
    )
