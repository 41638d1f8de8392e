"""Functions run in child processes by the KV tests (importable by multiprocessing's spawn)."""

from __future__ import annotations

import time

from threefs.kv import Transaction, open_engine, run_transaction


def increment(txn: Transaction, key: bytes, pause_s: float = 0.0) -> int:
    """Read-modify-write of a decimal counter; returns the new value.

    ``pause_s`` between the read and the write lets other threads run there, so an engine
    that loses updates does lose some.
    """
    value = int(txn.get(key) or b"0") + 1
    if pause_s:
        time.sleep(pause_s)
    txn.set(key, str(value).encode())
    return value


def increment_many(url: str, key: bytes, count: int, pause_s: float = 0.0) -> None:
    """Open the engine at ``url`` and increment ``key`` ``count`` times, one transaction each."""
    with open_engine(url) as engine:
        for _ in range(count):
            run_transaction(engine, lambda txn: increment(txn, key, pause_s), max_retries=100)
