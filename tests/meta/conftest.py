"""Fixtures for the meta tests: a ``MetaEnv`` over each KV engine kind and ``fs``, a small
synchronous driver of meta's operations (each call one ``execute_op`` with a fresh RequestId).

- ``meta_env`` / ``fs``: parametrized over ``mem``, ``sqlite`` and ``postgres`` (marked
  ``postgres``; one server per session, its ``kv`` table dropped before each test).
- ``local_env`` / ``local_fs``: ``mem`` and ``sqlite`` only, for the bulk of the cases.
- ``mem_env`` / ``mem_fs``: ``mem`` only.

``MetaFs``, ``expect_code``, ``TEST_LAYOUT`` and ``make_env`` live in ``meta_fs.py`` (import
them with ``from meta_fs import ...``). The root directory is created with ``TEST_LAYOUT``
(mode 0755, owned by root). ``fs`` runs as admin root; ``fs.as_user(uid, gid, groups)`` is
the same file system seen by another caller.
Times come from ``TickClock`` (one microsecond per reading), so every attempt of every op has
its own ``now_ns`` and tests can tell which op stamped a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from meta_fs import TEST_LAYOUT, MetaFs, make_env

from meta.ops.context import MetaEnv
from threefs.kv import Engine, open_engine
from threefs.layout import Layout

ALL_ENGINES = [
    pytest.param("mem"),
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
]
LOCAL_ENGINES = ["mem", "sqlite"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object]:
    """A PostgreSQL server for the whole session (skipped where PostgreSQL is not installed)."""
    from threefs.testing.postgres import PostgresServer, find_postgres_bin

    if find_postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (scripts/install-system.sh installs it)")
    with PostgresServer() as server:
        yield server


def _open(kind: str, request: pytest.FixtureRequest, tmp_path) -> Engine:
    if kind == "mem":
        return open_engine("mem://")
    if kind == "sqlite":
        return open_engine(f"sqlite://{tmp_path}/kv.db?busy_timeout=5")
    if kind == "postgres":
        import psycopg

        server = request.getfixturevalue("postgres_server")
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS kv")
        return open_engine(server.dsn)
    raise ValueError(kind)


@pytest.fixture
def make_meta_env(request: pytest.FixtureRequest, tmp_path) -> Iterator[Callable[..., MetaEnv]]:
    """``make_meta_env(kind, layout=TEST_LAYOUT)``: a fresh MetaEnv (closed after the test)."""
    engines: list[Engine] = []

    def make(kind: str, layout: Layout | None = TEST_LAYOUT) -> MetaEnv:
        directory = tmp_path / f"engine{len(engines)}"
        directory.mkdir()
        engine = _open(kind, request, directory)
        engines.append(engine)
        return make_env(engine, layout)

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture(params=ALL_ENGINES)
def meta_env(request: pytest.FixtureRequest, make_meta_env) -> MetaEnv:
    return make_meta_env(request.param)


@pytest.fixture(params=LOCAL_ENGINES)
def local_env(request: pytest.FixtureRequest, make_meta_env) -> MetaEnv:
    return make_meta_env(request.param)


@pytest.fixture
def mem_env(make_meta_env) -> MetaEnv:
    return make_meta_env("mem")


@pytest.fixture
def fs(meta_env: MetaEnv) -> MetaFs:
    return MetaFs(meta_env)


@pytest.fixture
def local_fs(local_env: MetaEnv) -> MetaFs:
    return MetaFs(local_env)


@pytest.fixture
def mem_fs(mem_env: MetaEnv) -> MetaFs:
    return MetaFs(mem_env)
