"""The GC worker: deletes the chunks of removed files, then their GC jobs.

Every ``gc_interval_s`` (or at once when a removal queued something: ``wake``) it takes up to
``gc_batch`` due jobs (``meta.ops.gc.take_due_jobs``, which postpones them by a lease so
another meta server does not take them too), removes each file's chunks from every chain of its
layout (``StorageClient.remove``, idempotent), and finishes the jobs whose chunks are gone
(``finish_job``) in one transaction for the pass. A job whose chunks could not be removed stays
queued and is taken again when its lease ends.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from meta.ops.context import run_op
from meta.ops.gc import DueJob, finish_job, take_due_jobs
from threefs.errors import ThreeFSError
from threefs.wire.meta import Caller, InodeType

if TYPE_CHECKING:
    from meta.app import MetaApp

__all__ = ["SERVER_CALLER", "GcWorker"]

log = logging.getLogger("meta.gc")

SERVER_CALLER = Caller(uid=0, gid=0, admin=True)  # the meta server's own housekeeping
_CONCURRENT_JOBS = 8


class GcWorker:
    """``run_once`` handles the jobs due now; ``run_forever`` repeats (see the module docstring)."""

    def __init__(self, app: MetaApp) -> None:
        self.app = app
        self._wakeup = trio.Event()

    def wake(self) -> None:
        """Run the next pass now (a removal just queued a job)."""
        self._wakeup.set()

    async def run_once(self) -> int:
        """Handle up to ``gc_batch`` due jobs; returns how many were finished."""
        app = self.app
        jobs = await run_op(
            app.env,
            lambda ctx: take_due_jobs(ctx, ctx.now_ns, app.config.gc_batch),
            caller=SERVER_CALLER,
        )
        collected: list[DueJob] = []
        limiter = trio.CapacityLimiter(_CONCURRENT_JOBS)

        async def handle(job: DueJob) -> None:
            async with limiter:
                if await self._collect(job):
                    collected.append(job)

        async with trio.open_nursery() as nursery:
            for job in jobs:
                nursery.start_soon(handle, job)
        if not collected:
            return 0
        try:  # one transaction finishes the whole pass (the chunks of each are gone)
            await run_op(
                app.env, lambda ctx: [finish_job(ctx, due.key) for due in collected], caller=SERVER_CALLER
            )
        except ThreeFSError as exc:
            log.warning("finishing %d GC jobs failed (retried later): %s", len(collected), exc)
            app.metrics.gc_jobs.labels("failed").inc(len(collected))
            return 0
        for due in collected:
            app.metrics.gc_jobs.labels("done").inc()
            log.debug("GC removed inode %d (%s)", due.job.inode.id, due.job.reason)
        return len(collected)

    async def _collect(self, due: DueJob) -> bool:
        """Remove the chunks of ``due``'s inode; False (logged) when storage refused."""
        app = self.app
        inode = due.job.inode
        try:
            if inode.type == InodeType.FILE and inode.layout is not None:
                removed = await app.storage.remove(inode.id, inode.layout)
                app.metrics.gc_chunks_removed.inc(removed)
        except ThreeFSError as exc:
            log.warning("GC of inode %d failed (retried later): %s", inode.id, exc)
            app.metrics.gc_jobs.labels("failed").inc()
            return False
        return True

    async def run_forever(self) -> None:
        while True:
            self._wakeup = trio.Event()
            try:
                while await self.run_once() >= self.app.config.gc_batch:
                    pass  # a full batch: more may be due
            except Exception:  # a bug here must not take the server down: log it, go on
                log.exception("GC pass failed unexpectedly")
            with trio.move_on_after(self.app.config.gc_interval_s):
                await self._wakeup.wait()
