"""Blocking calls that run on the event loop while they are short, in a worker thread otherwise.

A ``trio.to_thread`` hop costs a busy event loop more than a call of a few hundred
microseconds: the worker and the loop hand the GIL back and forth on the way in and out. Meta
measured 2.1-2.3 ms for the hop around a 0.2-0.4 ms fsync; storage three hops per replica of
every chunk update. But a call that blocks for long (a fsync on a rotating disk, a cold read)
must not hold the loop. ``ShortCalls`` keeps a moving average of each kind of call's duration
and runs the call on the loop while that average is under ``limit_s``, else in a thread; the
duration is measured either way, so the calls come back to the loop once they are short again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import TypeVar

import trio

__all__ = ["ShortCalls"]

T = TypeVar("T")


class ShortCalls:
    """Where to run blocking calls, per kind (any hashable ``key``). ``limit_s`` 0: always in a
    thread. ``weight``: of the latest duration in the moving average (which starts at 0, so the
    first call of a kind runs on the loop)."""

    def __init__(self, limit_s: float, weight: float = 0.2) -> None:
        self.limit_s = limit_s
        self.weight = weight
        self._average: dict[Hashable, float] = {}

    def average_s(self, key: Hashable) -> float:
        """The moving average of the durations of calls of kind ``key`` (0 before the first)."""
        return self._average.get(key, 0.0)

    def inline(self, key: Hashable) -> bool:
        """Whether the next call of kind ``key`` runs on the event loop."""
        return self._average.get(key, 0.0) < self.limit_s

    async def run(
        self, key: Hashable, fn: Callable[[], T], *, limiter: trio.CapacityLimiter | None = None
    ) -> T:
        """``fn()``, on the loop or in a worker thread (through ``limiter``), its duration noted.
        Either way a cancellation is noticed before the call starts (``trio.Cancelled``), never
        during it; only a call in a thread yields to other tasks."""
        if self.inline(key):
            await trio.lowlevel.checkpoint_if_cancelled()
            started = time.perf_counter()
            try:
                return fn()
            finally:
                self._note(key, time.perf_counter() - started)
        took = 0.0

        def timed() -> T:
            nonlocal took
            started = time.perf_counter()
            try:
                return fn()
            finally:
                took = time.perf_counter() - started

        try:
            return await trio.to_thread.run_sync(timed, limiter=limiter)
        finally:
            self._note(key, took)

    def _note(self, key: Hashable, seconds: float) -> None:
        average = self._average.get(key, 0.0)
        self._average[key] = average + (seconds - average) * self.weight
