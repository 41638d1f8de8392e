"""``run_transaction`` and its trio variant: retries, bounds, backoff, propagation."""

from __future__ import annotations

import random

import pytest
import trio

from threefs.errors import Code, ThreeFSError
from threefs.kv import Backoff, MemEngine, run_transaction, run_transaction_async


class Flaky:
    """Raises ``code`` for the first ``failures`` calls, then writes and returns the call count."""

    def __init__(self, failures: int, code: Code = Code.KV_CONFLICT) -> None:
        self.failures = failures
        self.code = code
        self.calls = 0

    def __call__(self, txn) -> int:
        self.calls += 1
        txn.set(b"attempt-%d" % self.calls, b"x")
        if self.calls <= self.failures:
            raise ThreeFSError(self.code, f"failure {self.calls}")
        return self.calls


def keys_of(engine: MemEngine) -> list[bytes]:
    with engine.transaction(read_only=True) as txn:
        return [key for key, _ in txn.get_range(b"", b"\xff")]


def test_retries_until_success_and_only_the_last_attempt_commits() -> None:
    engine = MemEngine()
    pauses: list[float] = []
    retries: list[int] = []
    flaky = Flaky(3)
    result = run_transaction(
        engine, flaky, initial_backoff=0.01, max_backoff=0.03, sleep=pauses.append,
        on_retry=lambda exc, attempts: retries.append(attempts),
    )  # fmt: skip
    assert result == 4 and retries == [1, 2, 3]
    assert keys_of(engine) == [b"attempt-4"]
    assert len(pauses) == 3
    for pause, ceiling in zip(pauses, (0.01, 0.02, 0.03), strict=True):
        assert ceiling / 2 <= pause <= ceiling  # doubling, jittered, capped at max_backoff


def test_backoff_doubles_with_jitter_up_to_the_maximum() -> None:
    backoff = Backoff(0.001, 0.1, random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    for index, delay in enumerate(delays):
        ceiling = min(0.1, 0.001 * 2**index)
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jittered
    with pytest.raises(ThreeFSError):
        Backoff(0.2, 0.1)


def test_retry_limit_reports_attempts_and_last_error() -> None:
    flaky = Flaky(100, Code.KV_TXN_TOO_OLD)
    with pytest.raises(ThreeFSError) as excinfo:
        run_transaction(MemEngine(), flaky, max_retries=4, sleep=lambda s: None)
    assert excinfo.value.code == Code.KV_RETRY_LIMIT
    assert "5 attempts" in excinfo.value.message and "failure 5" in excinfo.value.message
    assert excinfo.value.__cause__.code == Code.KV_TXN_TOO_OLD
    assert flaky.calls == 5
    flaky = Flaky(1)
    with pytest.raises(ThreeFSError) as excinfo:
        run_transaction(MemEngine(), flaky, max_retries=0, sleep=lambda s: None)
    assert excinfo.value.code == Code.KV_RETRY_LIMIT and flaky.calls == 1


def test_non_retryable_errors_propagate_at_once_after_rollback() -> None:
    engine = MemEngine()
    flaky = Flaky(5, Code.META_NOT_FOUND)
    with pytest.raises(ThreeFSError) as excinfo:
        run_transaction(engine, flaky, sleep=lambda s: pytest.fail("slept"))
    assert excinfo.value.code == Code.META_NOT_FOUND and flaky.calls == 1

    def broken(txn):
        txn.set(b"k", b"v")
        raise KeyError("not a ThreeFSError")

    with pytest.raises(KeyError):
        run_transaction(engine, broken)
    assert keys_of(engine) == []
    assert not engine._store._active  # every attempt's transaction was ended


def test_negative_max_retries_is_invalid() -> None:
    with pytest.raises(ThreeFSError) as excinfo:
        run_transaction(MemEngine(), Flaky(0), max_retries=-1)
    assert excinfo.value.code == Code.INVALID_ARG


async def test_async_variant_retries_in_threads() -> None:
    engine = MemEngine()
    flaky = Flaky(2)
    thread_names: list[str] = []

    def fn(txn):
        import threading

        thread_names.append(threading.current_thread().name)
        return flaky(txn)

    assert await run_transaction_async(engine, fn, initial_backoff=0.001) == 3
    assert keys_of(engine) == [b"attempt-3"]
    assert all(name != "MainThread" for name in thread_names)
    with pytest.raises(ThreeFSError) as excinfo:
        await run_transaction_async(engine, Flaky(10), max_retries=1, initial_backoff=0)
    assert excinfo.value.code == Code.KV_RETRY_LIMIT and "2 attempts" in excinfo.value.message


async def test_async_variant_backoff_uses_trio_clock(autojump_clock) -> None:
    started = trio.current_time()
    flaky = Flaky(3)
    assert await run_transaction_async(MemEngine(), flaky, initial_backoff=10.0, max_backoff=20.0) == 4
    elapsed = trio.current_time() - started
    assert 5 + 10 + 10 <= elapsed <= 10 + 20 + 20  # virtual time: three jittered pauses


async def test_async_cancellation_stops_retrying() -> None:
    flaky = Flaky(1000)
    with trio.move_on_after(0.2):
        await run_transaction_async(MemEngine(), flaky, initial_backoff=0.05, max_backoff=0.05)
    calls = flaky.calls
    assert 1 <= calls <= 10
    await trio.sleep(0.1)
    assert flaky.calls == calls
