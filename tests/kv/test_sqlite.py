"""SQLite specifics: read-write transactions run one at a time, across threads and processes."""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time

import pytest

from threefs.errors import Code, ThreeFSError
from threefs.kv import open_engine, run_transaction
from threefs.kv.sqlite import SqliteEngine


@pytest.fixture
def path(tmp_path):
    return tmp_path / "kv.db"


def test_file_is_in_wal_mode_with_the_kv_table(path) -> None:
    with SqliteEngine(path):
        pass
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == [("kv",)]
    conn.close()


def test_second_writer_waits_for_the_first_and_sees_its_write(path) -> None:
    with SqliteEngine(path) as engine:
        run_transaction(engine, lambda txn: txn.set(b"n", b"0"))
        first = engine.transaction()
        assert first.get(b"n") == b"0"
        seen = []

        def second() -> None:
            seen.append(run_transaction(engine, lambda txn: txn.get(b"n")))

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.1)
        assert seen == []  # still waiting for the write lock
        first.set(b"n", b"1")
        first.commit()
        thread.join(timeout=5)
        assert seen == [b"1"]


def test_same_thread_second_writer_times_out_with_conflict(path) -> None:
    with SqliteEngine(path, busy_timeout_s=0.05) as engine:
        first = engine.transaction()
        first.set(b"k", b"v")
        second = engine.transaction()
        with pytest.raises(ThreeFSError) as excinfo:
            second.get(b"k")
        assert excinfo.value.code == Code.KV_CONFLICT and excinfo.value.retryable
        assert second.closed
        first.commit()


def test_other_process_writer_gets_conflict_after_busy_timeout(path) -> None:
    """Two engines on one file stand for two processes: only SQLite's lock is shared."""
    with SqliteEngine(path) as holder, SqliteEngine(path, busy_timeout_s=0.05) as other:
        txn = holder.transaction()
        txn.set(b"k", b"held")
        started = time.monotonic()
        with pytest.raises(ThreeFSError) as excinfo:
            run_transaction(other, lambda t: t.set(b"k", b"other"), max_retries=0)
        assert excinfo.value.code == Code.KV_RETRY_LIMIT
        assert excinfo.value.__cause__.code == Code.KV_CONFLICT
        assert time.monotonic() - started >= 0.04
        reader = other.transaction(read_only=True)
        assert reader.get(b"k") is None  # readers are never blocked by the writer
        reader.commit()
        txn.commit()
        assert run_transaction(other, lambda t: t.get(b"k"), read_only=True) == b"held"


def test_url_options_and_relative_path(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_engine("sqlite://sub.db?busy_timeout=0.5&synchronous=normal") as engine:
        assert engine.busy_timeout_s == 0.5
        assert engine.path.resolve() == tmp_path / "sub.db"
    for bad in (
        "sqlite://x.db?synchronous=sometimes",
        "sqlite://x.db?busy_timeout=soon",
        "sqlite://x.db?color=red",
    ):
        with pytest.raises(ThreeFSError) as excinfo:
            open_engine(bad)
        assert excinfo.value.code == Code.INVALID_ARG


def test_unopenable_file_is_unavailable(tmp_path) -> None:
    with pytest.raises(ThreeFSError) as excinfo:
        SqliteEngine(tmp_path / "missing-dir" / "kv.db")
    assert excinfo.value.code == Code.KV_UNAVAILABLE


def test_try_begin_takes_a_free_write_lock_and_never_waits_for_a_held_one(path) -> None:
    # Two engines on one file stand for two processes (each has its own in-process lock).
    with SqliteEngine(path, busy_timeout_s=5) as here, SqliteEngine(path, busy_timeout_s=5) as other:
        holder = other.transaction()
        holder.set(b"a", b"1")  # another process holds the file's write lock
        holder.begin()
        txn = here.transaction()
        started = time.monotonic()
        assert txn.try_begin() is False
        assert time.monotonic() - started < 1.0  # not the 5 s busy timeout
        holder.commit()
        same_process = here.transaction()
        same_process.begin()  # this process's lock, held by another transaction
        assert here.transaction().try_begin() is False
        same_process.rollback()
        assert txn.try_begin() is True
        txn.set(b"b", b"2")
        txn.commit()
        assert here.transaction().try_begin() is True  # the busy timeout was put back: see below
        conn = here._checkout()
        try:
            assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        finally:
            here._checkin(conn)
    with SqliteEngine(path) as engine:
        assert run_transaction(engine, lambda t: t.get_range(b"", b"\xff"), read_only=True) == [
            (b"a", b"1"),
            (b"b", b"2"),
        ]


def test_commit_waits_for_disk_follows_synchronous(path) -> None:
    assert SqliteEngine(path).commit_waits_for_disk is True
    assert SqliteEngine(path, synchronous="NORMAL").commit_waits_for_disk is False
    assert open_engine("mem://").commit_waits_for_disk is False


def _wal_fsyncs(monkeypatch) -> list[str]:
    """Record the file of every os.fsync from now on."""
    synced: list[str] = []
    fsync = os.fsync

    def recording(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return synced


def test_full_commits_fsync_the_wal_file_before_returning(path, monkeypatch) -> None:
    """FULL is done by the engine: connections run SQLite's NORMAL and every read-write commit
    fsyncs the WAL file (the directory too, once); a read-only commit or NORMAL syncs nothing."""
    with SqliteEngine(path) as engine:
        run_transaction(engine, lambda t: t.set(b"warm", b"1"))  # creates the WAL
        synced = _wal_fsyncs(monkeypatch)
        run_transaction(engine, lambda t: t.set(b"a", b"1"))
        run_transaction(engine, lambda t: t.set(b"b", b"2"))
        run_transaction(engine, lambda t: t.get(b"a"), read_only=True)
        assert [p for p in synced if p.endswith("-wal")] == [f"{path}-wal"] * 2
        conn = engine._checkout()
        try:
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        finally:
            engine._checkin(conn)
    monkeypatch.undo()
    with SqliteEngine(path, synchronous="NORMAL") as engine:
        synced = _wal_fsyncs(monkeypatch)
        run_transaction(engine, lambda t: t.set(b"c", b"3"))
        assert synced == []


def test_one_flush_covers_every_commit_before_it(path, monkeypatch) -> None:
    with SqliteEngine(path) as engine:
        assert engine.defers_flush
        tickets = []
        for key in (b"a", b"b", b"c"):
            txn = engine.transaction()
            txn.set(key, b"1")
            tickets.append(txn.commit_unsynced())
        read = engine.transaction(read_only=True)
        assert read.get(b"c") == b"1"  # visible before the flush
        read.rollback()
        synced = _wal_fsyncs(monkeypatch)
        engine.sync(tickets[-1])
        engine.sync(tickets[0])  # covered already
        assert [p for p in synced if p.endswith("-wal")] == [f"{path}-wal"]
        txn = engine.transaction()
        txn.get(b"a")  # read-write, but writes nothing: nothing to flush
        assert txn.commit_unsynced() is None


def test_a_failed_flush_is_sticky(path, monkeypatch) -> None:
    with SqliteEngine(path) as engine:
        run_transaction(engine, lambda t: t.set(b"a", b"1"))

        def broken(fd: int) -> None:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(os, "fsync", broken)
        with pytest.raises(ThreeFSError) as first:
            run_transaction(engine, lambda t: t.set(b"b", b"2"))
        monkeypatch.undo()
        with pytest.raises(ThreeFSError) as later:
            run_transaction(engine, lambda t: t.set(b"c", b"3"))
        assert first.value.code == later.value.code == Code.IO_ERROR
        assert run_transaction(engine, lambda t: t.get(b"a"), read_only=True) == b"1"  # reads go on
