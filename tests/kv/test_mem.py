"""The mem engine follows FoundationDB's conflict rules exactly: read ranges against later writes."""

from __future__ import annotations

import pytest

from threefs.errors import Code, ThreeFSError
from threefs.kv import MemEngine, run_transaction


def commit_write(engine: MemEngine, key: bytes, value: bytes = b"x") -> None:
    run_transaction(engine, lambda txn: txn.set(key, value))


def commit_fails(txn) -> bool:
    txn.set(b"out", b"1")
    try:
        txn.commit()
    except ThreeFSError as exc:
        assert exc.code == Code.KV_CONFLICT
        return True
    return False


@pytest.fixture
def engine():
    with MemEngine() as engine:
        for key in (b"a", b"b", b"c", b"d"):
            commit_write(engine, key)
        yield engine


def test_a_read_key_written_later_conflicts(engine: MemEngine) -> None:
    txn = engine.transaction()
    txn.get(b"b")
    commit_write(engine, b"b")
    assert commit_fails(txn)


def test_writes_to_unread_keys_do_not_conflict(engine: MemEngine) -> None:
    txn = engine.transaction()
    txn.get(b"b")
    commit_write(engine, b"c")
    assert not commit_fails(txn)


def test_limited_range_read_conflicts_only_up_to_its_last_key(engine: MemEngine) -> None:
    forward = engine.transaction()
    assert [k for k, _ in forward.get_range(b"a", b"z", limit=2)] == [b"a", b"b"]
    backward = engine.transaction()
    assert [k for k, _ in backward.get_range(b"a", b"z", limit=2, reverse=True)] == [b"d", b"c"]
    commit_write(engine, b"c\x00")  # past forward's last key, inside backward's range
    assert not commit_fails(forward)
    assert commit_fails(backward)


def test_range_read_conflicts_with_inserts_and_range_clears(engine: MemEngine) -> None:
    phantom = engine.transaction()
    assert len(phantom.get_range(b"b", b"c")) == 1
    commit_write(engine, b"bb")  # a new key inside the range read
    assert commit_fails(phantom)
    cleared = engine.transaction()
    cleared.get(b"d")
    run_transaction(engine, lambda txn: txn.clear_range(b"c", b"z"))
    assert commit_fails(cleared)


def test_snapshot_reads_and_explicit_conflicts(engine: MemEngine) -> None:
    snapshot = engine.transaction()
    snapshot.snapshot_get(b"a")
    snapshot.snapshot_get_range(b"a", b"z")
    explicit = engine.transaction()
    explicit.add_read_conflict_key(b"a")
    ranged = engine.transaction()
    ranged.add_read_conflict_range(b"0", b"b")
    commit_write(engine, b"a")
    assert not commit_fails(snapshot)
    assert commit_fails(explicit)
    assert commit_fails(ranged)


def test_read_only_and_blind_write_transactions_never_conflict(engine: MemEngine) -> None:
    reader = engine.transaction()
    assert reader.get(b"a") == b"x"
    blind = engine.transaction()
    commit_write(engine, b"a", b"new")
    reader.commit()
    blind.set(b"a", b"blind")
    blind.commit()
    assert run_transaction(engine, lambda txn: txn.get(b"a")) == b"blind"


def test_history_is_pruned_once_no_reader_needs_it(engine: MemEngine) -> None:
    store = engine._store
    old_reader = engine.transaction(read_only=True)
    assert old_reader.get(b"a") == b"x"
    for index in range(50):
        commit_write(engine, b"a", b"%d" % index)
        run_transaction(engine, lambda txn: txn.clear(b"gone"))
        commit_write(engine, b"tmp")
        run_transaction(engine, lambda txn: txn.clear(b"tmp"))
    assert old_reader.get(b"a") == b"x"  # kept for the open reader
    assert len(store._commits) >= 50
    old_reader.rollback()
    commit_write(engine, b"a", b"last")
    run_transaction(engine, lambda txn: txn.clear(b"tmp"))
    assert len(store._history[b"a"]) == 1
    assert b"tmp" not in store._history and b"tmp" not in store._keys
    assert len(store._commits) <= 1
    assert not store._active
