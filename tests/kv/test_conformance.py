"""The KV conformance suite: every engine must pass it (mem, sqlite, postgres, fdb)."""

from __future__ import annotations

import multiprocessing
import os
import threading

import pytest

from threefs.errors import Code, ThreeFSError
from threefs.kv import MAX_KEY_BYTES, MAX_TXN_BYTES, MAX_VALUE_BYTES, Engine, run_transaction

from .conftest import IN_PROCESS_KINDS
from .workers import increment, increment_many

ALL = (b"", b"\xff")


def put(engine: Engine, items: dict[bytes, bytes]) -> None:
    def write(txn):
        for key, value in items.items():
            txn.set(key, value)

    run_transaction(engine, write)


def read_all(engine: Engine) -> list[tuple[bytes, bytes]]:
    return run_transaction(engine, lambda txn: txn.get_range(*ALL), read_only=True)


def code_of(excinfo: pytest.ExceptionInfo[ThreeFSError]) -> Code:
    return excinfo.value.code


# ---- point and range reads -----------------------------------------------------------------


def test_get_set_overwrite_and_missing(engine: Engine) -> None:
    put(engine, {b"k": b"v1"})
    put(engine, {b"k": b"v2"})
    txn = engine.transaction()
    assert txn.get(b"k") == b"v2"
    assert txn.get(b"missing") is None
    assert txn.snapshot_get(b"k") == b"v2"
    txn.rollback()


def test_empty_value_is_present(engine: Engine) -> None:
    put(engine, {b"k": b""})
    assert run_transaction(engine, lambda txn: txn.get(b"k")) == b""


def test_range_boundaries_limits_and_reverse(engine: Engine) -> None:
    put(engine, {key: key.upper() for key in (b"a", b"b", b"c", b"d", b"e")})
    txn = engine.transaction(read_only=True)
    keys = lambda pairs: [key for key, _ in pairs]  # noqa: E731
    assert txn.get_range(b"b", b"d") == [(b"b", b"B"), (b"c", b"C")]  # begin in, end out
    assert keys(txn.get_range(b"b", b"d\x00")) == [b"b", b"c", b"d"]
    assert keys(txn.get_range(b"a\x00", b"c")) == [b"b"]
    assert txn.get_range(b"c", b"c") == []
    assert txn.get_range(b"d", b"b") == []
    assert txn.get_range(b"x", b"z") == []
    assert keys(txn.get_range(*ALL)) == [b"a", b"b", b"c", b"d", b"e"]
    assert keys(txn.get_range(*ALL, limit=2)) == [b"a", b"b"]
    assert keys(txn.get_range(*ALL, reverse=True)) == [b"e", b"d", b"c", b"b", b"a"]
    assert keys(txn.get_range(b"a", b"e", limit=2, reverse=True)) == [b"d", b"c"]
    assert keys(txn.get_range(b"b", b"d", limit=10)) == [b"b", b"c"]
    assert keys(txn.snapshot_get_range(b"b", b"e", limit=1, reverse=True)) == [b"d"]
    with pytest.raises(ThreeFSError) as excinfo:
        txn.get_range(b"a", b"b", limit=-1)
    assert code_of(excinfo) == Code.INVALID_ARG
    txn.commit()


def test_bytes_order_is_memcmp(engine: Engine) -> None:
    keys = [b"", b"\x00", b"\x00\x00", b"\x00\x01", b"\x01", b"a", b"a\x00", b"a\x7f", b"a\x80",
            b"a\xff", b"a\xff\xff", b"ab", b"\x7f", b"\x80", b"\x80\x00", b"\xc3\xa9", b"\xfe",
            b"\xfe\xff"]  # fmt: skip
    put(engine, {key: b"v" for key in keys})
    assert [key for key, _ in read_all(engine)] == sorted(keys)
    txn = engine.transaction(read_only=True)
    assert [key for key, _ in txn.get_range(b"\x7f", b"\xfe")] == [b"\x7f", b"\x80", b"\x80\x00", b"\xc3\xa9"]
    assert [key for key, _ in txn.get_range(b"a\x80", b"b", reverse=True)] == [
        b"a\xff\xff",
        b"a\xff",
        b"a\x80",
    ]
    txn.rollback()


def test_long_keys_sharing_a_long_prefix(engine: Engine) -> None:
    """Keys equal in their first 1500 bytes stay distinct and ordered (postgres indexes a prefix)."""
    common = os.urandom(1500).replace(b"\xff", b"\x00")
    keys = [common, common + b"\x00", common + b"a", common + b"a" * 3000, common + b"b", common + b"\xfe"]
    put(engine, {key: key[-8:] for key in keys})
    put(engine, {common + b"a": b"updated"})
    txn = engine.transaction(read_only=True)
    assert [key for key, _ in txn.get_range(*ALL)] == sorted(keys)
    assert [key for key, _ in txn.get_range(common + b"a", common + b"b", reverse=True)] == [
        common + b"a" * 3000,
        common + b"a",
    ]
    assert txn.get(common + b"a") == b"updated"
    assert txn.get(common + b"c") is None
    txn.rollback()
    run_transaction(engine, lambda t: t.clear(common + b"a"))
    assert len(read_all(engine)) == len(keys) - 1


def test_reserved_keyspace(engine: Engine) -> None:
    put(engine, {b"\xfe": b"last"})
    txn = engine.transaction()
    for write in (
        lambda: txn.set(b"\xff", b"v"),
        lambda: txn.set(b"\xff\x00", b"v"),
        lambda: txn.clear(b"\xff"),
    ):
        with pytest.raises(ThreeFSError) as excinfo:
            write()
        assert code_of(excinfo) == Code.INVALID_ARG
    assert txn.get(b"\xff") is None
    assert txn.get_range(b"", b"\xff\xff\xff") == [(b"\xfe", b"last")]  # end clamped to 0xff
    assert txn.get_range(b"\xff", b"\xff\xff") == []
    txn.rollback()


# ---- clears ---------------------------------------------------------------------------------


def test_clear_and_clear_range(engine: Engine) -> None:
    put(engine, {key: b"v" for key in (b"a", b"b", b"c", b"d", b"e")})

    def clear(txn):
        txn.clear(b"a")
        txn.clear(b"absent")
        txn.clear_range(b"c", b"e")  # removes c, d; keeps e
        txn.clear_range(b"z", b"b")  # begin > end: nothing

    run_transaction(engine, clear)
    assert [key for key, _ in read_all(engine)] == [b"b", b"e"]
    run_transaction(engine, lambda txn: txn.clear_range(*ALL))
    assert read_all(engine) == []


# ---- read-your-writes -----------------------------------------------------------------------


def test_read_your_writes_point(engine: Engine) -> None:
    put(engine, {b"a": b"1", b"b": b"2"})
    txn = engine.transaction()
    txn.set(b"a", b"A")
    assert txn.get(b"a") == b"A"
    txn.clear(b"b")
    assert txn.get(b"b") is None
    txn.set(b"n", b"new")
    txn.clear_range(b"m", b"o")
    assert txn.get(b"n") is None
    txn.set(b"n", b"again")
    assert txn.get(b"n") == b"again"
    assert txn.snapshot_get(b"n") == b"again"
    txn.commit()
    assert read_all(engine) == [(b"a", b"A"), (b"n", b"again")]


def test_read_your_writes_range_merges_committed_set_and_cleared(engine: Engine) -> None:
    put(engine, {key: key for key in (b"a", b"b", b"c", b"d", b"e", b"f")})
    expected = [(b"a", b"a"), (b"b", b"B"), (b"bb", b"new"), (b"e", b"E"), (b"f", b"f")]
    txn = engine.transaction()
    txn.set(b"b", b"B")
    txn.set(b"bb", b"new")
    txn.clear(b"c")
    txn.clear_range(b"d", b"f")  # d and e
    txn.set(b"e", b"E")  # set again after the clear
    assert txn.get_range(*ALL) == expected
    assert txn.get_range(*ALL, reverse=True) == expected[::-1]
    assert txn.get_range(*ALL, limit=2, reverse=True) == [(b"f", b"f"), (b"e", b"E")]
    assert txn.get_range(b"b", b"f", limit=3, reverse=True) == [(b"e", b"E"), (b"bb", b"new"), (b"b", b"B")]
    assert txn.get_range(b"a\x00", b"z", limit=2) == expected[1:3]
    assert txn.snapshot_get_range(b"c", b"e\x00") == [(b"e", b"E")]
    txn.commit()
    assert read_all(engine) == expected


# ---- isolation ------------------------------------------------------------------------------


def test_snapshot_isolation(engine: Engine) -> None:
    put(engine, {b"k": b"old"})
    reader = engine.transaction(read_only=True)
    assert reader.get(b"k") == b"old"  # fixes the read version
    put(engine, {b"k": b"new", b"k2": b"x"})
    assert reader.get(b"k") == b"old"
    assert reader.get(b"k2") is None
    assert reader.get_range(*ALL) == [(b"k", b"old")]
    reader.commit()
    assert read_all(engine) == [(b"k", b"new"), (b"k2", b"x")]


def _concurrent_writers_only(engine: Engine) -> None:
    if engine.serializes_writers:
        pytest.skip("this engine runs read-write transactions one at a time (see test_sqlite.py)")


def test_lost_update_interleaved_conflicts(engine: Engine) -> None:
    _concurrent_writers_only(engine)
    put(engine, {b"n": b"0"})
    first, second = engine.transaction(), engine.transaction()
    assert first.get(b"n") == second.get(b"n") == b"0"
    first.set(b"n", b"1")
    first.commit()
    with pytest.raises(ThreeFSError) as excinfo:
        second.set(b"n", b"1")
        second.commit()
    assert code_of(excinfo) == Code.KV_CONFLICT and excinfo.value.retryable
    assert second.closed
    assert read_all(engine) == [(b"n", b"1")]


def test_write_skew_interleaved_one_fails(engine: Engine) -> None:
    _concurrent_writers_only(engine)
    put(engine, {b"a": b"1", b"b": b"1"})  # invariant: at least one is 1
    txns = [engine.transaction(), engine.transaction()]
    for txn in txns:
        assert txn.get(b"a") == txn.get(b"b") == b"1"
    failures = []
    for txn, key in zip(txns, (b"a", b"b"), strict=True):
        try:
            txn.set(key, b"0")
        except ThreeFSError as exc:
            failures.append(exc.code)
    for txn in txns:
        if not txn.closed:
            try:
                txn.commit()
            except ThreeFSError as exc:
                failures.append(exc.code)
    assert failures == [Code.KV_CONFLICT]
    assert sorted(value for _, value in read_all(engine)) == [b"0", b"1"]


def test_write_skew_threads_keep_invariant(engine: Engine) -> None:
    """Both threads start together; whatever the engine does, one of a, b stays 1."""
    for _ in range(5):
        put(engine, {b"a": b"1", b"b": b"1"})
        start = threading.Barrier(2)

        def doctor(key: bytes, start: threading.Barrier) -> None:
            start.wait()
            try:
                with engine.transaction() as txn:
                    if txn.get(b"a") == txn.get(b"b") == b"1":
                        txn.set(key, b"0")
                    txn.commit()
            except ThreeFSError as exc:
                assert exc.code == Code.KV_CONFLICT

        threads = [threading.Thread(target=doctor, args=(key, start)) for key in (b"a", b"b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert b"1" in [value for _, value in read_all(engine)]


def test_lost_update_threads_exact_total(engine: Engine) -> None:
    threads, per_thread = 4, 25
    workers = [
        threading.Thread(
            target=lambda: [
                run_transaction(engine, lambda t: increment(t, b"n", 0.0005), max_retries=100)
                for _ in range(per_thread)
            ]
        )
        for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert read_all(engine) == [(b"n", str(threads * per_thread).encode())]


def test_lost_update_processes_exact_total(kv_kind: str, kv_url: str) -> None:
    if kv_kind in IN_PROCESS_KINDS:
        pytest.skip(f"a {kv_kind} engine lives in one process")
    processes, per_process = 3, 20
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=increment_many, args=(kv_url, b"n", per_process, 0.0005))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    increment_many(kv_url, b"n", per_process, 0.0005)  # this process competes too
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    from threefs.kv import open_engine

    with open_engine(kv_url) as engine:
        assert read_all(engine) == [(b"n", str((processes + 1) * per_process).encode())]


# ---- retries --------------------------------------------------------------------------------


def test_retry_limit_with_forced_conflict(engine: Engine) -> None:
    calls = []

    def always_conflicts(txn):
        calls.append(1)
        txn.set(b"k", b"v")
        raise ThreeFSError(Code.KV_CONFLICT, "forced")

    with pytest.raises(ThreeFSError) as excinfo:
        run_transaction(engine, always_conflicts, max_retries=3, initial_backoff=0, max_backoff=0)
    assert code_of(excinfo) == Code.KV_RETRY_LIMIT
    assert "4 attempts" in excinfo.value.message and "forced" in excinfo.value.message
    assert isinstance(excinfo.value.__cause__, ThreeFSError)
    assert len(calls) == 4
    assert read_all(engine) == []


def test_retry_limit_with_real_conflict(engine: Engine, kv_url: str) -> None:
    """Each attempt is beaten by another transaction (a committed write, or the write lock)."""
    put(engine, {b"k": b"0"})
    if engine.serializes_writers:
        from threefs.kv import open_engine

        with open_engine(kv_url.replace("busy_timeout=5", "busy_timeout=0.05")) as impatient:
            blocker = engine.transaction()
            blocker.set(b"k", b"held")
            with pytest.raises(ThreeFSError) as excinfo:
                run_transaction(impatient, lambda t: increment(t, b"k"), max_retries=2, initial_backoff=0.001)
            blocker.rollback()
    else:

        def beaten(txn):
            txn.get(b"k")
            put(engine, {b"k": os.urandom(4)})
            txn.set(b"k", b"mine")

        with pytest.raises(ThreeFSError) as excinfo:
            run_transaction(engine, beaten, max_retries=2, initial_backoff=0.001)
    assert code_of(excinfo) == Code.KV_RETRY_LIMIT
    assert "3 attempts" in excinfo.value.message
    assert excinfo.value.__cause__.code == Code.KV_CONFLICT
    assert run_transaction(engine, lambda t: t.get(b"k")) != b"mine"


# ---- limits and errors ----------------------------------------------------------------------


def test_size_limits_exact_accepted_one_over_refused(engine: Engine) -> None:
    assert engine.max_key_bytes <= MAX_KEY_BYTES
    big_key = b"k" + os.urandom(engine.max_key_bytes - 1)  # incompressible
    big_value = os.urandom(MAX_VALUE_BYTES)
    txn = engine.transaction()
    txn.set(big_key, big_value)
    txn.set(b"small", b"v")
    for write, code in [
        (lambda: txn.set(big_key + b"x", b"v"), Code.KV_KEY_TOO_LARGE),
        (lambda: txn.set(b"small", big_value + b"x"), Code.KV_VALUE_TOO_LARGE),
        (lambda: txn.clear(big_key + b"x"), Code.KV_KEY_TOO_LARGE),
    ]:
        with pytest.raises(ThreeFSError) as excinfo:
            write()
        assert code_of(excinfo) == code
    assert txn.get(b"small") == b"v"  # the refused writes changed nothing, the txn goes on
    txn.commit()
    assert read_all(engine) == sorted([(big_key, big_value), (b"small", b"v")])


def test_transaction_size_limit(engine: Engine) -> None:
    value = os.urandom(MAX_VALUE_BYTES)
    count = MAX_TXN_BYTES // (MAX_VALUE_BYTES + 3)
    txn = engine.transaction()
    for index in range(count):
        txn.set(b"%03d" % index, value)
    with pytest.raises(ThreeFSError) as excinfo:
        txn.set(b"one-too-many", value)
    assert code_of(excinfo) == Code.KV_TXN_TOO_LARGE
    txn.rollback()
    assert read_all(engine) == []


def test_closed_transaction_refuses_everything(engine: Engine) -> None:
    for end in ("commit", "rollback"):
        txn = engine.transaction()
        txn.set(b"k", b"v")
        getattr(txn, end)()
        assert txn.closed
        calls = [
            (txn.get, (b"k",)), (txn.snapshot_get, (b"k",)), (txn.get_range, ALL),
            (txn.snapshot_get_range, ALL), (txn.set, (b"k", b"v")), (txn.clear, (b"k",)),
            (txn.clear_range, ALL), (txn.add_read_conflict_key, (b"k",)), (txn.commit, ()),
        ]  # fmt: skip
        for method, args in calls:
            with pytest.raises(ThreeFSError) as excinfo:
                method(*args)
            assert code_of(excinfo) == Code.KV_TXN_CLOSED
        txn.rollback()  # idempotent
    assert read_all(engine) == [(b"k", b"v")]


def test_with_block_without_commit_rolls_back(engine: Engine) -> None:
    with engine.transaction() as txn:
        txn.set(b"k", b"v")
    assert txn.closed
    assert read_all(engine) == []


def test_read_only_transaction_refuses_writes(engine: Engine) -> None:
    put(engine, {b"k": b"v"})
    txn = engine.transaction(read_only=True)
    assert txn.read_only
    for write in (lambda: txn.set(b"k", b"w"), lambda: txn.clear(b"k"), lambda: txn.clear_range(*ALL)):
        with pytest.raises(ThreeFSError) as excinfo:
            write()
        assert code_of(excinfo) == Code.KV_READ_ONLY
    assert txn.get(b"k") == b"v"
    txn.commit()
    calls = []

    def writes(t):
        calls.append(1)
        t.set(b"k", b"w")

    with pytest.raises(ThreeFSError) as excinfo:
        run_transaction(engine, writes, read_only=True)
    assert code_of(excinfo) == Code.KV_READ_ONLY and calls == [1]  # not retried
    assert read_all(engine) == [(b"k", b"v")]


def test_arguments_must_be_bytes(engine: Engine) -> None:
    txn = engine.transaction()
    for operation in (lambda: txn.get("k"), lambda: txn.set(b"k", "v"), lambda: txn.get_range(b"a", None)):
        with pytest.raises(ThreeFSError) as excinfo:
            operation()
        assert code_of(excinfo) == Code.INVALID_ARG
    txn.rollback()


def test_closed_engine_refuses_transactions(engine: Engine) -> None:
    engine.close()
    with pytest.raises(ThreeFSError) as excinfo:
        engine.transaction()
    assert code_of(excinfo) == Code.KV_TXN_CLOSED
    engine.close()  # idempotent


def test_snapshot_reads_add_no_conflict(engine: Engine) -> None:
    _concurrent_writers_only(engine)
    put(engine, {b"k": b"0"})
    txn = engine.transaction()
    assert txn.snapshot_get(b"k") == b"0"
    assert txn.snapshot_get_range(*ALL) == [(b"k", b"0")]
    put(engine, {b"k": b"1"})
    txn.set(b"other", b"x")
    txn.commit()
    assert read_all(engine) == [(b"k", b"1"), (b"other", b"x")]
