"""GroupCommitter: concurrent mutating ops share sqlite transactions, each in a savepoint."""

from __future__ import annotations

import errno
import os
import threading
import time

import pytest
import trio

from meta.ops.batch import GroupCommitter
from threefs.errors import Code, ThreeFSError
from threefs.kv import open_engine
from threefs.kv.retry import run_transaction, run_transaction_async


@pytest.fixture
def engine(tmp_path):
    with open_engine(f"sqlite://{tmp_path}/kv.db?busy_timeout=5") as engine:
        yield engine


def read_all(engine) -> dict[bytes, bytes]:
    return dict(run_transaction(engine, lambda txn: txn.get_range(b"", b"\xff"), read_only=True))


@pytest.mark.parametrize("inline_ops", [False, True], ids=["in-thread", "inline"])
async def test_ops_submitted_together_share_a_transaction_and_fail_alone(engine, inline_ops):
    committer = GroupCommitter(engine, limiter=trio.CapacityLimiter(1), inline_ops=inline_ops)
    results: dict[int, object] = {}

    def op(i: int):
        def attempt(txn):
            txn.set(b"k%03d" % i, b"v")
            if i % 5 == 0:
                raise ThreeFSError(Code.META_EXISTS, f"op {i} refused")  # after a write: rolled back
            return i

        return attempt

    async def fallback_never():
        raise AssertionError("no fallback expected")

    async def submit(i: int) -> None:
        try:
            results[i] = await committer.submit(op(i), fallback_never)
        except ThreeFSError as exc:
            results[i] = exc.code

    async with trio.open_nursery() as nursery:
        for i in range(40):
            nursery.start_soon(submit, i)
    assert results == {i: (Code.META_EXISTS if i % 5 == 0 else i) for i in range(40)}
    assert set(read_all(engine)) == {b"k%03d" % i for i in range(40) if i % 5}
    assert committer.operations == 40 and committer.batches < 40  # some shared a transaction


async def test_a_retryable_failure_runs_alone_through_the_fallback(engine):
    committer = GroupCommitter(engine)
    calls = []

    def conflicting(txn):
        raise ThreeFSError(Code.KV_CONFLICT, "busy")

    async def fallback():
        calls.append("fallback")
        return await run_transaction_async(engine, lambda txn: txn.set(b"x", b"1") or "alone")

    assert await committer.submit(conflicting, fallback) == "alone"
    assert calls == ["fallback"] and read_all(engine) == {b"x": b"1"}


async def test_a_failed_commit_runs_every_op_alone(engine, monkeypatch):
    committer = GroupCommitter(engine)
    original = committer._run_in_thread

    def broken(batch):
        original(batch[:0])  # an empty transaction, then the commit "fails"
        raise ThreeFSError(Code.KV_COMMIT_UNKNOWN, "lost")

    monkeypatch.setattr(committer, "_run_in_thread", broken)

    async def fallback():
        return "alone"

    assert await committer.submit(lambda txn: txn.set(b"y", b"2"), fallback) == "alone"
    assert read_all(engine) == {}


def test_engines_without_savepoints_are_refused():
    with open_engine("mem://") as engine, pytest.raises(ValueError):
        GroupCommitter(engine)


async def test_an_inline_batch_waits_in_a_thread_for_a_write_lock_held_elsewhere(engine):
    """try_begin fails while another transaction holds sqlite's write lock: the batch then
    begins in a worker thread (the event loop keeps running) and commits once the lock is free."""
    committer = GroupCommitter(engine, inline_ops=True)
    holder = engine.transaction()
    holder.set(b"held", b"1")  # takes the write lock
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.sleep(0.01)

    async def fallback_never():
        raise AssertionError("no fallback expected")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        submitted, finished = trio.Event(), trio.Event()
        results = []

        async def submit() -> None:
            submitted.set()
            results.append(await committer.submit(lambda txn: txn.set(b"k", b"v") or "done", fallback_never))
            finished.set()

        nursery.start_soon(submit)
        await submitted.wait()
        await trio.sleep(0.2)
        assert results == [] and ticks >= 5  # waiting, and the loop was not blocked
        await trio.to_thread.run_sync(holder.commit)
        with trio.fail_after(5):
            await finished.wait()
        nursery.cancel_scope.cancel()
    assert results == ["done"]
    assert read_all(engine) == {b"held": b"1", b"k": b"v"}


async def test_a_failed_inline_commit_runs_every_op_alone(engine, monkeypatch):
    committer = GroupCommitter(engine, inline_ops=True)
    original = engine.transaction

    def failing_commits(read_only: bool = False):
        txn = original(read_only)

        def lost() -> None:
            raise ThreeFSError(Code.KV_COMMIT_UNKNOWN, "lost")

        txn.commit = lost
        txn.commit_unsynced = lost
        return txn

    monkeypatch.setattr(engine, "transaction", failing_commits)

    async def fallback():
        return "alone"

    assert await committer.submit(lambda txn: txn.set(b"y", b"2"), fallback) == "alone"
    monkeypatch.undo()
    assert read_all(engine) == {}


async def test_ops_are_answered_only_once_flushed_while_the_next_batch_runs(engine, monkeypatch):
    """sqlite with FULL, slow flushes: a batch commits, hands the lead on and waits in a worker
    thread for its flush; the next batch commits meanwhile (its writes are visible), and nobody
    is answered before the flush that covers their commit has ended."""
    assert engine.defers_flush
    committer = GroupCommitter(engine, inline_ops=True, inline_flush_max_s=0)  # flush in threads
    release = threading.Event()
    flushing = [trio.Event(), trio.Event()]  # batch n's flush has begun
    sync = engine.sync

    def slow_sync(ticket):
        if ticket is None:  # a read, or a write transaction that wrote nothing
            return
        trio.from_thread.run_sync(next(e for e in flushing if not e.is_set()).set)
        release.wait(10)
        sync(ticket)

    monkeypatch.setattr(engine, "sync", slow_sync)
    answered: list[int] = []

    async def fallback_never():
        raise AssertionError("no fallback expected")

    async def submit(i: int) -> None:
        answered.append(await committer.submit(lambda txn: txn.set(b"k%d" % i, b"v") or i, fallback_never))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(submit, 0)
        with trio.fail_after(5):
            await flushing[0].wait()  # batch 0 committed, its flush is under way
        nursery.start_soon(submit, 1)
        with trio.fail_after(5):
            await flushing[1].wait()  # batch 1 ran and committed during batch 0's flush
        assert read_all(engine) == {b"k0": b"v", b"k1": b"v"}
        assert answered == []
        release.set()
    assert sorted(answered) == [0, 1]


async def test_a_failed_flush_fails_its_batch_and_every_later_write(engine, monkeypatch):
    committer = GroupCommitter(engine, inline_ops=True)

    def broken_fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    async def fallback_never():
        raise AssertionError("no fallback expected")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(ThreeFSError) as failed:
        await committer.submit(lambda txn: txn.set(b"a", b"1"), fallback_never)
    assert failed.value.code == Code.IO_ERROR and "refuses writes" in failed.value.message
    monkeypatch.undo()
    with pytest.raises(ThreeFSError) as refused:
        run_transaction(engine, lambda txn: txn.set(b"b", b"2"))
    assert refused.value.code == Code.IO_ERROR


async def test_short_flushes_run_on_the_loop_and_slow_ones_in_a_thread(engine, monkeypatch):
    """Flushes run on the event loop while recent ones were short; after slow ones (a moving
    average over the limit) they go to a worker thread, and come back once they are short."""
    committer = GroupCommitter(engine, inline_ops=True, inline_flush_max_s=0.005)
    sync = engine.sync
    where: list[str] = []
    delay = 0.0

    def recording_sync(ticket):
        if ticket is not None:
            where.append("loop" if threading.current_thread() is threading.main_thread() else "thread")
            time.sleep(delay)
        sync(ticket)

    monkeypatch.setattr(engine, "sync", recording_sync)

    async def fallback_never():
        raise AssertionError("no fallback expected")

    async def one(i: int) -> None:
        await committer.submit(lambda txn: txn.set(b"k%d" % i, b"v"), fallback_never)

    for i in range(3):
        await one(i)
    delay = 0.05  # the disk turns slow: 50 ms flushes
    for i in range(3, 6):
        await one(i)
    delay = 0.0
    for i in range(6, 30):
        await one(i)
    assert where[:4] == ["loop"] * 4  # the first slow flush still ran on the loop
    assert where[4] == "thread"
    assert where[-1] == "loop"
    assert len(read_all(engine)) == 30
