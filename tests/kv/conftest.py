"""Fixtures for the KV tests: one URL and one open engine per engine kind, each test in a clean keyspace.

PostgreSQL runs once per test session (a real server from the Debian package); FoundationDB
runs only where ``THREEFS_FDB_CLUSTER_FILE`` names a cluster, under a per-test key prefix;
``fdb-fake`` runs the fdb adapter over an in-memory stand-in for the bindings.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from urllib.parse import quote_from_bytes

import pytest

from threefs.kv import Engine, open_engine

FDB_ENV = "THREEFS_FDB_CLUSTER_FILE"
ENGINE_KINDS = [
    pytest.param("mem"),
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("fdb"),
    pytest.param("fdb-fake"),  # the fdb adapter over a stand-in for the bindings (fake_fdb.py)
]
IN_PROCESS_KINDS = {"mem", "fdb-fake"}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object]:
    """A PostgreSQL server for the whole session, stopped (and its directory removed) at the end."""
    from threefs.testing.postgres import PostgresServer, find_postgres_bin

    if find_postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (scripts/install-system.sh installs it)")
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=ENGINE_KINDS)
def kv_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def kv_url(kv_kind: str, request: pytest.FixtureRequest, tmp_path, monkeypatch) -> Iterator[str]:
    """A URL naming an empty keyspace of the engine kind; other processes may open it too."""
    if kv_kind == "mem":
        yield "mem://"
    elif kv_kind == "sqlite":
        yield f"sqlite://{tmp_path}/kv.db?busy_timeout=5"
    elif kv_kind == "postgres":
        import psycopg

        server = request.getfixturevalue("postgres_server")
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS kv")
        yield server.dsn
    elif kv_kind == "fdb":
        cluster_file = os.environ.get(FDB_ENV)
        if not cluster_file:
            pytest.skip(f"{FDB_ENV} not set")
        prefix = b"threefs-test/" + uuid.uuid4().hex.encode() + b"/"
        url = f"fdb://{os.path.abspath(cluster_file)}?prefix={quote_from_bytes(prefix)}"
        yield url
        with open_engine(url) as engine:
            txn = engine.transaction()
            txn.clear_range(b"", b"\xff")
            txn.commit()
    elif kv_kind == "fdb-fake":
        from .fake_fdb import make_module

        monkeypatch.setitem(sys.modules, "fdb", make_module())
        yield "fdb:///fake/fdb.cluster?prefix=threefs-test%2F"
    else:
        raise ValueError(kv_kind)


@pytest.fixture
def engine(kv_url: str) -> Iterator[Engine]:
    engine = open_engine(kv_url)
    yield engine
    engine.close()
