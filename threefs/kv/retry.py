"""The one retry driver for KV transactions: run ``fn(txn)``, commit, retry retryable errors.

``fn`` must be safe to run several times: it may run again after a conflict, and after
``KV_COMMIT_UNKNOWN`` its first run may have committed (meta records request ids for that).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import trio

from threefs.errors import Code, ThreeFSError
from threefs.kv.interface import Engine, Transaction

__all__ = ["run_transaction", "run_transaction_async", "Backoff", "DEFAULT_MAX_RETRIES"]

T = TypeVar("T")

DEFAULT_MAX_RETRIES = 20
DEFAULT_INITIAL_BACKOFF_S = 0.002
DEFAULT_MAX_BACKOFF_S = 0.5

OnRetry = Callable[[ThreeFSError, int], None]


class Backoff:
    """Exponential backoff with jitter: delay n is uniform in ``[d/2, d]``, ``d = min(max, initial*2^n)``.

    The lower half-bound keeps every retry a real pause; the jitter keeps colliding
    transactions from retrying in lockstep.
    """

    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if initial_s < 0 or max_s < initial_s:
            raise ThreeFSError(
                Code.INVALID_ARG, f"need 0 <= initial_backoff <= max_backoff, got {initial_s}, {max_s}"
            )
        self._current = initial_s
        self._max = max_s
        self._random = rng.random if rng is not None else random.random

    def next_delay(self) -> float:
        """The pause before the next attempt; each call doubles the next one, up to the maximum."""
        delay = self._current * (0.5 + 0.5 * self._random())
        self._current = min(self._max, self._current * 2)
        return delay


def _attempt(engine: Engine, fn: Callable[[Transaction], T], read_only: bool) -> T:
    """One try: a fresh transaction, ``fn``, commit; always ends the transaction."""
    txn = engine.transaction(read_only=read_only)
    try:
        result = fn(txn)
        txn.commit()
        return result
    finally:
        txn.rollback()  # a no-op after a successful commit


def _check_retry(exc: ThreeFSError, attempts: int, max_retries: int, on_retry: OnRetry | None) -> None:
    """Raise unless ``exc`` may be retried once more."""
    if not exc.retryable:
        raise exc
    if attempts > max_retries:
        raise ThreeFSError(
            Code.KV_RETRY_LIMIT, f"transaction gave up after {attempts} attempts; last error: {exc}"
        ) from exc
    if on_retry is not None:
        on_retry(exc, attempts)


def run_transaction(
    engine: Engine,
    fn: Callable[[Transaction], T],
    *,
    max_retries: int = DEFAULT_MAX_RETRIES,
    initial_backoff: float = DEFAULT_INITIAL_BACKOFF_S,
    max_backoff: float = DEFAULT_MAX_BACKOFF_S,
    read_only: bool = False,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``fn(txn)`` in a new transaction and commit; return what ``fn`` returned.

    A retryable ``ThreeFSError`` (from ``fn``, the engine or the commit) rolls back and starts
    over after a backoff (seconds, doubling from ``initial_backoff`` up to ``max_backoff``);
    ``on_retry(error, attempts_so_far)`` is called before each pause. After ``max_retries``
    retries (``max_retries + 1`` attempts) it raises ``KV_RETRY_LIMIT`` naming the attempts and
    the last error, chained to it. Any other exception rolls back and propagates at once.
    """
    if max_retries < 0:
        raise ThreeFSError(Code.INVALID_ARG, f"max_retries must be >= 0, not {max_retries}")
    backoff = Backoff(initial_backoff, max_backoff)
    attempts = 0
    while True:
        attempts += 1
        try:
            return _attempt(engine, fn, read_only)
        except ThreeFSError as exc:
            _check_retry(exc, attempts, max_retries, on_retry)
        sleep(backoff.next_delay())


async def run_transaction_async(
    engine: Engine,
    fn: Callable[[Transaction], T],
    *,
    max_retries: int = DEFAULT_MAX_RETRIES,
    initial_backoff: float = DEFAULT_INITIAL_BACKOFF_S,
    max_backoff: float = DEFAULT_MAX_BACKOFF_S,
    read_only: bool = False,
    on_retry: OnRetry | None = None,
    limiter: trio.CapacityLimiter | None = None,
) -> T:
    """``run_transaction`` for trio: each attempt runs whole in a worker thread (at most
    ``limiter``'s tokens at once, default trio's), pauses use trio.

    Cancellation: an attempt already in its thread runs to its end (commit or rollback), so
    none is left half-done; the cancellation is raised after it, or during a pause between
    attempts, and then no further attempt starts.
    """
    if max_retries < 0:
        raise ThreeFSError(Code.INVALID_ARG, f"max_retries must be >= 0, not {max_retries}")
    backoff = Backoff(initial_backoff, max_backoff)
    attempts = 0
    while True:
        attempts += 1
        try:
            return await trio.to_thread.run_sync(_attempt, engine, fn, read_only, limiter=limiter)
        except ThreeFSError as exc:
            _check_retry(exc, attempts, max_retries, on_retry)
        await trio.sleep(backoff.next_delay())
