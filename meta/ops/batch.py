"""Group commit: mutating operations that arrive together share one KV transaction.

On an engine that serializes writers (sqlite), every write transaction pays a BEGIN, a COMMIT
and its fsync, one after another. ``GroupCommitter`` collects the operations submitted while a
batch is being committed and runs the next ones as one transaction, each inside a savepoint: an
operation that fails is rolled back to its savepoint alone (its caller gets its error) and the
others still commit. The batch runs in one worker thread call. Serializability holds because
the operations of a batch run one after another inside a serial transaction, exactly as if
each had its own.

Leader protocol (no background task): the first submitter becomes the leader and runs one
batch: everything queued when it starts, its own operation first. Once that batch is committed
it hands the lead to the oldest queued submitter (which runs the next batch at once) and then
waits for the engine to flush its commit to disk (``Engine.sync``; sqlite with FULL flushes the
WAL file itself, ``threefs.kv.sqlite``) before any operation of its batch is answered. A flush
runs on the event loop while recent flushes were short (under ``inline_flush_max_s``, 1 ms:
cheaper than the GIL hand-offs of a thread hop, and requests meanwhile queue in the sockets for
the next batch), else in a worker thread, where the disk flushes one batch while the next one
runs. Either way an operation is answered only once it is durable. Later submitters wait for
their result or for the lead. The leader's work is shielded from cancellation, so a cancelled
leader still finishes the batch others wait on (like an operation already in its worker thread,
which also runs to its end).

Where a batch runs: in one worker thread call, or (``inline_ops``, for engines with
``local_reads``: sqlite, mem) with its operations on the event loop and only the waits in worker
threads: ``Transaction.begin`` when ``try_begin`` finds sqlite's write lock taken (by another
thread or process), and a commit that waits for the disk (``commit_waits_for_disk``: an
fsync). An operation is tens of local b-tree lookups, and running it in a thread
made the thread and the event loop hand the GIL back and forth for every query; the commit's
fsync releases the GIL, so the loop keeps reading requests (the next batch) meanwhile.

A failed flush fails every operation of its batch with the engine's IO_ERROR (the engine then
refuses all writes: what readers saw may be gone).

If a batch's commit fails, nothing of it happened: each of its operations then runs again on
its own through ``fallback`` (the ordinary retried path), so a retryable commit error costs a
retry, not a failure; so does an operation that failed with a retryable error in the batch.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import outcome
import trio

from threefs.kv.interface import Engine, Transaction
from threefs.service.short_calls import ShortCalls

__all__ = ["GroupCommitter"]

Attempt = Callable[[Transaction], Any]


class _Pending:
    __slots__ = ("attempt", "fallback", "leads", "result", "wake")

    def __init__(self, attempt: Attempt, fallback: Callable[[], Awaitable[Any]]) -> None:
        self.attempt = attempt
        self.fallback = fallback
        self.wake = trio.Event()  # set when the result is in, or when this submitter must lead
        self.leads = False
        self.result: outcome.Outcome | None = None


class GroupCommitter:
    """Batches write attempts on ``engine`` (which must support savepoints); at most
    ``max_batch`` operations per transaction, run in a worker thread through ``limiter``."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 64,
        limiter: trio.CapacityLimiter | None = None,
        inline_ops: bool = False,
        inline_flush_max_s: float = 0.001,
    ):
        if not engine.supports_savepoints:
            raise ValueError(f"{type(engine).__name__} has no savepoints: it cannot group commits")
        self._engine = engine
        self._inline_ops = inline_ops
        self._max_batch = max_batch
        self._limiter = limiter
        self._flushes = ShortCalls(inline_flush_max_s)
        self._queue: list[_Pending] = []
        self._leading = False
        self.batches = 0  # statistics: transactions committed, and the operations in them
        self.operations = 0

    async def submit(self, attempt: Attempt, fallback: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``attempt(txn)`` in a shared transaction and return its result (or raise its
        error) once it is durable. ``fallback()`` runs the operation on its own if the shared
        commit fails."""
        pending = _Pending(attempt, fallback)
        self._queue.append(pending)
        if self._leading:
            try:
                await pending.wake.wait()
            except trio.Cancelled:
                if pending.leads:  # the lead came with the cancellation: others wait on it
                    await self._lead()
                    raise
                if pending in self._queue:  # not taken yet: it never runs
                    self._queue.remove(pending)
                    raise
                with trio.CancelScope(shield=True):  # taken: its transaction is in flight
                    await pending.wake.wait()
                raise
            if pending.leads:
                await self._lead()
        else:
            self._leading = True
            await self._lead()
        assert pending.result is not None
        return pending.result.unwrap()

    async def _lead(self) -> None:
        """Run the next batch, pass the lead on, then answer the batch once it is durable."""
        with trio.CancelScope(shield=True):
            try:
                # let the requests already received (tasks ready to run) join this batch
                await trio.lowlevel.checkpoint()
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                try:
                    results, ticket = await self._run(batch)
                except BaseException:
                    results, ticket = None, None
            finally:
                if self._queue:
                    self._queue[0].leads = True
                    self._queue[0].wake.set()
                else:
                    self._leading = False
            await self._finish(batch, results, ticket)

    async def _finish(
        self, batch: list[_Pending], results: list[outcome.Outcome] | None, ticket: int | None
    ) -> None:
        if results is None:  # the shared commit failed: nothing happened, run each alone
            for pending in batch:
                pending.result = await outcome.acapture(pending.fallback)
                pending.wake.set()
            return
        if ticket is not None:
            flushed = await self._flush(ticket)
            if isinstance(flushed, outcome.Error):
                results = [flushed] * len(batch)
        self.batches += 1
        self.operations += len(batch)
        for pending, result in zip(batch, results, strict=True):
            if isinstance(result, outcome.Error) and getattr(result.error, "retryable", False):
                # e.g. a conflict: the ordinary path retries it with backoff
                result = await outcome.acapture(pending.fallback)
            pending.result = result
            pending.wake.set()

    async def _flush(self, ticket: int) -> outcome.Outcome:
        """``engine.sync(ticket)``: on the event loop while recent flushes took less than
        ``inline_flush_max_s``, else in a worker thread (``threefs.service.short_calls``: a
        thread hop costs the loop more than a short fsync)."""
        return await outcome.acapture(self._flushes.run, "flush", lambda: self._engine.sync(ticket))

    async def _run(self, batch: list[_Pending]) -> tuple[list[outcome.Outcome], int | None]:
        if self._inline_ops:
            return await self._run_inline(batch)
        results = await trio.to_thread.run_sync(self._run_in_thread, batch, limiter=self._limiter)
        return results, None

    async def _run_inline(self, batch: list[_Pending]) -> tuple[list[outcome.Outcome], int | None]:
        # No limiter for the wait for the lock: the transaction holds the engine's write lock
        # from begin to commit, and a limiter slot taken meanwhile by a thread waiting for that
        # lock would keep the commit from ever starting.
        txn = self._engine.transaction()
        try:
            if not txn.try_begin():
                await trio.to_thread.run_sync(txn.begin)
            results = self._run_ops(txn, batch)
            ticket = None
            if not self._engine.commit_waits_for_disk:
                txn.commit()
            elif self._engine.defers_flush:  # the flush is left for ``_finish``
                ticket = txn.commit_unsynced()
            else:
                await trio.to_thread.run_sync(txn.commit)
        except BaseException:
            txn.rollback()
            raise
        return results, ticket

    def _run_in_thread(self, batch: list[_Pending]) -> list[outcome.Outcome]:
        txn = self._engine.transaction()
        try:
            results = self._run_ops(txn, batch)
            txn.commit()
        except BaseException:
            txn.rollback()
            raise
        return results

    @staticmethod
    def _run_ops(txn: Transaction, batch: list[_Pending]) -> list[outcome.Outcome]:
        results: list[outcome.Outcome] = []
        for pending in batch:
            txn.savepoint()
            result = outcome.capture(pending.attempt, txn)
            if isinstance(result, outcome.Error):
                txn.rollback_to_savepoint()
            else:
                txn.release_savepoint()
            results.append(result)
        return results
