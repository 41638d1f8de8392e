"""Benchmark: single-key read-modify-write KV transactions per second, sqlite and postgres.

Each client (a thread) loops ``run_transaction(get key -> set key+1)`` on its own key (or all on
one key with ``--hot-key``) for ``--seconds``. Next to every figure is the limit measured in
the same run: the same number of clients issuing raw single-statement autocommit UPDATEs on the
same file settings (sqlite3) or the same server (psycopg ``UPDATE ... RETURNING`` on a plain
bytea primary key), and the ratio. PostgreSQL is a throwaway local server
(``threefs.testing.postgres``) with fsync off, so its figures are CPU and round-trip bound.

    .venv/bin/python bench/kv.py [--seconds 3] [--clients 1,8] [--engines sqlite,postgres]

Prints a table; the last line is one JSON object (also written to ``--json PATH`` if given).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable without installing

from threefs.kv import Engine, Transaction, run_transaction
from threefs.kv.postgres import PostgresEngine
from threefs.kv.sqlite import SqliteEngine
from threefs.testing.postgres import PostgresServer


def timed(clients: int, seconds: float, make_body: Callable[[int], Callable[[], None]]) -> float:
    """Run ``make_body(i)()`` in a loop on ``clients`` threads for ``seconds``; return calls/s."""
    stop = threading.Event()
    counts = [0] * clients
    errors: list[BaseException] = []
    bodies = [make_body(index) for index in range(clients)]

    def worker(index: int) -> None:
        body = bodies[index]
        done = 0
        try:
            while not stop.is_set():
                body()
                done += 1
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)
        counts[index] = done

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return sum(counts) / elapsed


def key_of(index: int, hot_key: bool) -> bytes:
    return b"bench/0" if hot_key else b"bench/%d" % index


def increment(txn: Transaction, key: bytes) -> None:
    txn.set(key, b"%d" % (int(txn.get(key) or b"0") + 1))


def bench_engine(engine: Engine, clients: int, seconds: float, hot_key: bool) -> tuple[float, int]:
    """KV read-modify-write transactions/s and the number of retries conflicts caused."""
    conflicts = [0]

    def count_retry(exc: object, attempts: int) -> None:
        conflicts[0] += 1

    def make_body(index: int) -> Callable[[], None]:
        key = key_of(index, hot_key)
        return lambda: run_transaction(engine, lambda txn: increment(txn, key), on_retry=count_retry)

    return timed(clients, seconds, make_body), conflicts[0]


def raw_sqlite(path: Path, synchronous: str, clients: int, seconds: float, hot_key: bool) -> float:
    """Autocommit ``UPDATE`` statements/s through plain sqlite3, the engine's pragmas.

    Every statement writes a new value: SQLite skips the write (and the WAL sync) of an
    unchanged one, which made a constant-value baseline 15x too fast.
    """
    connections: list[sqlite3.Connection] = []

    def make_body(index: int) -> Callable[[], None]:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA synchronous={synchronous}")
        connections.append(conn)
        key = b"raw/" + key_of(index, hot_key)
        conn.execute("INSERT OR IGNORE INTO kv (key, value) VALUES (?, ?)", (key, b"0"))
        values = itertools.count()
        sql = "UPDATE kv SET value = ? WHERE key = ?"
        return lambda: conn.execute(sql, (b"raw%d" % next(values), key))

    try:
        return timed(clients, seconds, make_body)
    finally:
        for conn in connections:
            conn.close()


def raw_postgres(dsn: str, clients: int, seconds: float, hot_key: bool) -> float:
    """Autocommit ``UPDATE ... RETURNING`` statements/s through plain psycopg, plain primary key."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_raw (key bytea PRIMARY KEY, value bytea NOT NULL)")
        for index in range(clients):
            conn.execute(
                "INSERT INTO bench_raw VALUES (%s, '0') ON CONFLICT DO NOTHING", (key_of(index, hot_key),)
            )
    connections: list[psycopg.Connection] = []

    def make_body(index: int) -> Callable[[], None]:
        conn = psycopg.connect(dsn, autocommit=True)
        connections.append(conn)
        key = key_of(index, hot_key)
        values = itertools.count()
        sql = "UPDATE bench_raw SET value = %s WHERE key = %s RETURNING value"
        return lambda: conn.execute(sql, (b"raw%d" % next(values), key), binary=True).fetchall()

    try:
        return timed(clients, seconds, make_body)
    finally:
        for conn in connections:
            conn.close()


def run(
    engines: list[str], client_counts: list[int], seconds: float, hot_key: bool, synchronous: str
) -> dict[str, object]:
    record: dict[str, object] = {
        "seconds_per_run": seconds,
        "hot_key": hot_key,
        "sqlite_synchronous": synchronous,
    }
    rows = []
    with tempfile.TemporaryDirectory(prefix="threefs-bench-kv-") as tmp:
        for name in engines:
            server = PostgresServer().start() if name == "postgres" else None
            try:
                if server is not None:
                    engine: Engine = PostgresEngine(server.dsn)
                    raw = lambda n, dsn=server.dsn: raw_postgres(dsn, n, seconds, hot_key)  # noqa: E731
                else:
                    path = Path(tmp) / "kv.db"
                    engine = SqliteEngine(path, synchronous=synchronous)
                    raw = lambda n, path=path: raw_sqlite(path, synchronous, n, seconds, hot_key)  # noqa: E731
                with engine:
                    for clients in client_counts:
                        txn_rate, conflicts = bench_engine(engine, clients, seconds, hot_key)
                        raw_rate = raw(clients)
                        label = f"{name}_{clients}_client{'s' if clients > 1 else ''}"
                        record[f"{label}_txn_per_s"] = round(txn_rate, 1)
                        record[f"{label}_raw_update_per_s"] = round(raw_rate, 1)
                        record[f"{label}_ratio"] = round(txn_rate / raw_rate, 3)
                        record[f"{label}_conflicts_retried"] = conflicts
                        rows.append((name, clients, txn_rate, raw_rate, txn_rate / raw_rate, conflicts))
            finally:
                if server is not None:
                    server.stop()
    keys = "one hot key" if hot_key else "a key per client"
    print(
        f"KV read-modify-write transactions, {seconds:g} s per run, {keys}, sqlite synchronous={synchronous}"
    )
    header = f"{'engine':<10}{'clients':>8}{'txn/s':>12}{'raw stmt/s':>14}{'ratio':>8}{'conflicts':>11}"
    print(header)
    print("-" * len(header))
    for name, clients, txn_rate, raw_rate, ratio, conflicts in rows:
        print(f"{name:<10}{clients:>8}{txn_rate:>12.0f}{raw_rate:>14.0f}{ratio:>8.2f}{conflicts:>11}")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each run (default 3)")
    parser.add_argument("--clients", default="1,8", help="comma-separated client counts (default 1,8)")
    parser.add_argument("--engines", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--hot-key", action="store_true", help="all clients update one key")
    parser.add_argument(
        "--sqlite-synchronous",
        default="FULL",
        help="PRAGMA synchronous for sqlite (default FULL, as the engine)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the JSON record to PATH")
    args = parser.parse_args(argv)
    engines = [name.strip() for name in args.engines.split(",") if name.strip()]
    unknown = set(engines) - {"sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown engine(s): {sorted(unknown)}")
    client_counts = [int(count) for count in args.clients.split(",")]
    record = run(engines, client_counts, args.seconds, args.hot_key, args.sqlite_synchronous.upper())
    line = json.dumps(record)
    if args.json:
        Path(args.json).write_text(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
