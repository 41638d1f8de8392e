"""The GC queue: listing it (``threefs admin gc-list``) and the two steps of the GC worker
(docs/meta.md "Removal and GC").

A job (``GCQU`` + due time + inode id) holds a copy of the removed inode, whose record is
already gone, so the worker needs nothing else to find the chunks. The worker:

1. ``take_due_jobs(ctx, now, limit, lease_ns)`` in one transaction: the jobs due at ``now``,
   each moved to due ``now + lease_ns`` so other meta servers' workers leave it alone meanwhile
   (if this worker dies, the job comes due again after the lease);
2. removes the chunks of each job from storage, outside any transaction (idempotent: removing
   a chunk that is gone is fine);
3. ``finish_job(ctx, key)`` in another transaction, with the key step 1 returned.
"""

from __future__ import annotations

from dataclasses import dataclass

from meta.ops.context import OpContext
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.kv import keys
from threefs.wire.meta import GcJob, GcListRequest, GcListResponse

__all__ = ["DEFAULT_LEASE_NS", "DueJob", "finish_job", "gc_list", "take_due_jobs"]

DEFAULT_LEASE_NS = 300 * 10**9


@dataclass(frozen=True)
class DueJob:
    """A job the worker took: ``key`` (pass it to ``finish_job``), when it comes due again if
    not finished, and the job."""

    key: bytes
    due_ns: int
    job: GcJob


def gc_list(ctx: OpContext, request: GcListRequest) -> GcListResponse:
    """The first ``request.limit`` jobs in due order (admin only: META_NOT_PERMITTED)."""
    if not ctx.caller.admin:
        raise ThreeFSError(Code.META_NOT_PERMITTED, "gc-list needs an admin identity")
    rows = records.list_gc_jobs(ctx.txn, limit=request.limit, snapshot=True)
    return GcListResponse(jobs=[job for _, _, job in rows], due_ns=[due for _, due, _ in rows])


def take_due_jobs(ctx: OpContext, now_ns: int, limit: int, lease_ns: int = DEFAULT_LEASE_NS) -> list[DueJob]:
    """Up to ``limit`` jobs due at ``now_ns`` (oldest first), each re-queued at ``now_ns +
    lease_ns`` (0: left where it is). Two workers taking the same job conflict and one
    retries, so after the lease moves a job only one worker holds it."""
    if limit < 1:
        raise ThreeFSError(Code.INVALID_ARG, f"limit must be at least 1, not {limit}")
    taken: list[DueJob] = []
    for key, due_ns, job in records.list_gc_jobs(ctx.txn, limit=limit):
        if due_ns > now_ns:
            break
        if lease_ns > 0:
            ctx.txn.clear(key)
            due_ns = now_ns + lease_ns
            records.queue_gc(ctx.txn, job.inode, due_ns=due_ns, queued_ns=job.queued_ns, reason=job.reason)
            key = keys.gc_queue_key(due_ns, job.inode.id)
        taken.append(DueJob(key=key, due_ns=due_ns, job=job))
    return taken


def finish_job(ctx: OpContext, key: bytes) -> bool:
    """Drop the job under ``key`` once its chunks are gone; False when it was not there (a
    second worker finished it after a lease ran out)."""
    if not key.startswith(keys.Prefix.GC_QUEUE.value):
        raise ThreeFSError(Code.INVALID_ARG, f"not a GC queue key: {key!r}")
    if ctx.txn.get(key) is None:
        return False
    ctx.txn.clear(key)
    return True
