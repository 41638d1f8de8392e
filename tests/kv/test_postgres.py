"""PostgreSQL specifics: the test server, errors at the connection level, tables, schema races."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from threefs.errors import Code, ThreeFSError
from threefs.kv import open_engine, run_transaction
from threefs.kv.postgres import PostgresEngine

pytestmark = pytest.mark.postgres


def test_server_lifecycle_cleans_up() -> None:
    from threefs.testing.postgres import PostgresServer, find_postgres_bin

    if find_postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed")
    server = PostgresServer(dbname="lifecycle")
    with pytest.raises(RuntimeError):
        server.dsn  # noqa: B018
    with server:
        data_dir = Path(server.log_path).parent
        with psycopg.connect(server.dsn) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("lifecycle",)
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        dsn = server.dsn
    assert not data_dir.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=2)
    server.stop()  # idempotent


def test_unreachable_server_is_unavailable() -> None:
    with pytest.raises(ThreeFSError) as excinfo:
        PostgresEngine("postgresql://postgres@127.0.0.1:1/none", connect_timeout_s=2)
    assert excinfo.value.code == Code.KV_UNAVAILABLE and excinfo.value.retryable


def _terminate(dsn: str, conn_pid: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (conn_pid,))


def test_lost_connection_mid_transaction_and_mid_commit(postgres_server) -> None:
    dsn = postgres_server.dsn
    with PostgresEngine(dsn, table="lost") as engine:
        txn = engine.transaction()
        txn.set(b"k", b"v")
        _terminate(dsn, txn._conn.info.backend_pid)
        with pytest.raises(ThreeFSError) as excinfo:
            txn.get(b"k")
        assert excinfo.value.code == Code.KV_UNAVAILABLE and txn.closed
        txn = engine.transaction()
        txn.set(b"k", b"v")
        _terminate(dsn, txn._conn.info.backend_pid)
        with pytest.raises(ThreeFSError) as excinfo:
            txn.commit()
        assert excinfo.value.code == Code.KV_COMMIT_UNKNOWN and excinfo.value.retryable
        assert run_transaction(engine, lambda t: t.get(b"k")) is None  # the pool dropped the dead ones


def test_table_option_keeps_keyspaces_apart(postgres_server) -> None:
    with (
        open_engine(postgres_server.dsn + "?table=kv_other") as other,
        PostgresEngine(postgres_server.dsn, table="kv_third") as third,
    ):
        run_transaction(other, lambda t: t.set(b"k", b"other"))
        assert run_transaction(third, lambda t: t.get(b"k")) is None
    with pytest.raises(ThreeFSError) as excinfo:
        PostgresEngine(postgres_server.dsn, table="kv; DROP TABLE kv")
    assert excinfo.value.code == Code.INVALID_ARG


def test_concurrent_engines_create_the_schema_once(postgres_server) -> None:
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            PostgresEngine(postgres_server.dsn, table="kv_race").close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
