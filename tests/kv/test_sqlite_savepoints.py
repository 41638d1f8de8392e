"""The sqlite transaction's in-memory buffer against a dict model: random gets, writes, range
reads and range clears, inside and outside savepoints that are released or rolled back, then a
commit; every read inside the transaction and the committed result must match the model."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from threefs.errors import Code, ThreeFSError
from threefs.kv import run_transaction
from threefs.kv.sqlite import SqliteEngine

from .test_model import apply, bounds, keys, model_range, values

steps = st.one_of(
    st.tuples(st.just("set"), keys, values),
    st.tuples(st.just("clear"), keys),
    st.tuples(st.just("clear_range"), bounds, bounds),
    st.tuples(st.just("get"), keys),
    st.tuples(st.just("get_range"), bounds, bounds),
    st.tuples(st.just("savepoint")),
    st.tuples(st.just("release")),
    st.tuples(st.just("rollback_to")),
)


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory):
    engine = SqliteEngine(tmp_path_factory.mktemp("sp") / "kv.db", synchronous="OFF")
    yield engine
    engine.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(committed=st.dictionaries(keys, values, max_size=6), script=st.lists(steps, max_size=24))
def test_buffered_writes_and_savepoints_match_a_model(sqlite_engine, committed, script) -> None:
    def reset(txn):
        txn.clear_range(b"", b"\xff")
        for key, value in committed.items():
            txn.set(key, value)

    run_transaction(sqlite_engine, reset)
    model = dict(committed)
    mark: dict[bytes, bytes] | None = None
    txn = sqlite_engine.transaction()
    try:
        for step in script:
            kind = step[0]
            if kind in ("set", "clear", "clear_range"):
                getattr(txn, kind)(*step[1:])
                apply(model, step)
            elif kind == "get":
                assert txn.get(step[1]) == model.get(step[1])
            elif kind == "get_range":
                assert txn.get_range(step[1], step[2]) == model_range(model, step[1], step[2], 0, False)
            elif kind == "savepoint":
                if mark is None:
                    txn.savepoint()
                    mark = dict(model)
            elif mark is not None:  # release / rollback_to
                if kind == "release":
                    txn.release_savepoint()
                else:
                    txn.rollback_to_savepoint()
                    model = mark
                mark = None
        txn.commit()
    finally:
        txn.rollback()
    after = sqlite_engine.transaction(read_only=True)
    assert after.get_range(b"", b"\xff") == sorted(model.items())
    after.rollback()


def test_savepoints_do_not_nest_and_need_one_open(sqlite_engine) -> None:
    txn = sqlite_engine.transaction()
    try:
        with pytest.raises(ThreeFSError) as err:
            txn.release_savepoint()
        assert err.value.code == Code.INVALID_ARG
        txn.savepoint()
        with pytest.raises(ThreeFSError) as err:
            txn.savepoint()
        assert err.value.code == Code.INVALID_ARG
    finally:
        txn.rollback()


def test_a_buffered_write_is_not_visible_to_others_before_commit(sqlite_engine) -> None:
    run_transaction(sqlite_engine, lambda txn: txn.clear_range(b"", b"\xff"))
    writer = sqlite_engine.transaction()
    try:
        writer.set(b"k", b"v")
        reader = sqlite_engine.transaction(read_only=True)
        assert reader.get(b"k") is None
        reader.rollback()
        writer.commit()
    finally:
        writer.rollback()
    reader = sqlite_engine.transaction(read_only=True)
    assert reader.get(b"k") == b"v"
    reader.rollback()
