"""Transactional ordered key-value store with FoundationDB semantics, and its engines.

``open_engine(url)`` picks the engine from the URL scheme::

    mem://                                   in-memory, empty (tests)
    sqlite:///abs/path.db[?busy_timeout=5&synchronous=full]   (sqlite://rel/path.db: relative)
    postgresql://user@host:port/db[?table=kv&<libpq params>]  (also postgres://)
    fdb://[/path/to/fdb.cluster][?prefix=<percent-encoded bytes>]

Engines are imported lazily, so using one never needs another's driver.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, unquote_to_bytes, urlencode, urlsplit, urlunsplit

from threefs.errors import Code, ThreeFSError
from threefs.kv.interface import (
    KEYSPACE_END,
    MAX_KEY_BYTES,
    MAX_TXN_BYTES,
    MAX_VALUE_BYTES,
    Engine,
    KeyValue,
    Transaction,
)
from threefs.kv.keys import Prefix, prefix_range
from threefs.kv.mem import MemEngine
from threefs.kv.retry import Backoff, run_transaction, run_transaction_async

__all__ = [
    "KEYSPACE_END",
    "MAX_KEY_BYTES",
    "MAX_TXN_BYTES",
    "MAX_VALUE_BYTES",
    "Backoff",
    "Engine",
    "KeyValue",
    "MemEngine",
    "Prefix",
    "Transaction",
    "open_engine",
    "prefix_range",
    "run_transaction",
    "run_transaction_async",
]


def _bad(url: str, why: str) -> ThreeFSError:
    return ThreeFSError(Code.INVALID_ARG, f"bad KV engine URL {url!r}: {why}")


def _options(url: str, query: str, allowed: set[str]) -> dict[str, str]:
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = set(options) - allowed
    if unknown:
        raise _bad(url, f"unknown option(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return options


def _open_sqlite(url: str, netloc: str, path: str, query: str) -> Engine:
    from threefs.kv.sqlite import SqliteEngine

    options = _options(url, query, {"busy_timeout", "synchronous"})
    file_path = unquote(netloc + path)  # sqlite:///abs -> "/abs"; sqlite://rel/x -> "rel/x"
    if not file_path:
        raise _bad(url, "no database file path")
    kwargs: dict[str, object] = {}
    if "busy_timeout" in options:
        try:
            kwargs["busy_timeout_s"] = float(options["busy_timeout"])
        except ValueError:
            raise _bad(url, "busy_timeout must be a number of seconds") from None
    if "synchronous" in options:
        kwargs["synchronous"] = options["synchronous"]
    return SqliteEngine(file_path, **kwargs)  # type: ignore[arg-type]


def _open_postgres(url: str) -> Engine:
    from threefs.kv.postgres import PostgresEngine

    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    table = next((value for name, value in pairs if name == "table"), "kv")
    rest = urlencode([(name, value) for name, value in pairs if name != "table"])
    return PostgresEngine(urlunsplit(parts._replace(query=rest)), table=table)


def _open_fdb(url: str, netloc: str, path: str, query: str) -> Engine:
    from threefs.kv.fdb import FdbEngine

    if netloc:
        raise _bad(url, "use fdb:///absolute/path/to/fdb.cluster (three slashes) or fdb://")
    options = _options(url, query, {"prefix"})
    prefix = unquote_to_bytes(options.get("prefix", ""))
    return FdbEngine(unquote(path) or None, prefix=prefix)


def open_engine(url: str) -> Engine:
    """Open the engine ``url`` names (see the module docstring); the caller closes it.

    Raises ``INVALID_ARG`` naming the URL for an unknown scheme or a malformed URL, and the
    engine's own errors (``KV_UNAVAILABLE``, ...) when it cannot be opened.
    """
    if not isinstance(url, str):
        raise ThreeFSError(Code.INVALID_ARG, f"KV engine URL must be a str, not {type(url).__name__}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "mem":
        if parts.netloc or parts.path or parts.query:
            raise _bad(url, "mem:// takes no path or options")
        return MemEngine()
    if scheme == "sqlite":
        return _open_sqlite(url, parts.netloc, parts.path, parts.query)
    if scheme in ("postgresql", "postgres"):
        return _open_postgres(url)
    if scheme == "fdb":
        return _open_fdb(url, parts.netloc, parts.path, parts.query)
    raise _bad(url, "unknown scheme; use mem://, sqlite://, postgresql:// or fdb://")
