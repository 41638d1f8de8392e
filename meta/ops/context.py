"""The driver of every meta operation: one serializable transaction, retried on conflict, with
the first result of each request id recorded in the same transaction.

``run_op(env, fn, request_id=..., response_type=...)`` runs ``fn(ctx)`` in a worker thread
through ``threefs.kv.run_transaction_async``. With a ``RequestId`` it first looks up
``IDEM`` + client + seq: when present, the recorded response is returned without running ``fn``
(a retry after a lost reply gets the first answer); otherwise ``fn``'s response is recorded
together with its changes. Failures are not recorded: a request that failed changed nothing,
so running it again is safe (it may then succeed, e.g. after the blocking entry went away).
With a ``fingerprint`` of the request (``request_fingerprint``: the method and the request's
bytes), a record answers only a retry of the very same request: another request under a used
id (a client bug, or a forged id) is refused with INVALID_ARG and changes nothing, instead of
getting the first request's answer (or, for another method, an answer it cannot decode).
Records carry their creation time; ``prune_idempotency_records`` drops those older than the
retention (clients retry for far less).

Where attempts run: read-only operations on an engine with ``local_reads`` (sqlite, mem) run
inline on the event loop (a stat is a few local b-tree lookups, tens of microseconds; a worker
thread would add a GIL hand-off per query, and eight such threads measured 3.5x slower than
one). Everything else runs in worker threads; on an engine that ``serializes_writers``
(sqlite) one thread at a time (``MetaEnv.write_limiter``), since more would only queue on the
engine's write lock while contending for the GIL, and with group commit
(``meta.ops.batch.GroupCommitter``): the mutating ops that arrive while one transaction commits
share the next one, each in its own savepoint, so a burst of creates pays one BEGIN/COMMIT/fsync.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
import trio

from meta.ops.batch import GroupCommitter
from meta.store.alloc import InodeAllocator
from threefs.errors import Code, ThreeFSError
from threefs.kv import keys
from threefs.kv.interface import Engine, Transaction
from threefs.kv.retry import run_transaction, run_transaction_async
from threefs.wire.common import MethodSpec
from threefs.wire.meta import Caller, RequestId

__all__ = [
    "MetaEnv",
    "OpContext",
    "execute_op",
    "prune_idempotency_records",
    "request_fingerprint",
    "run_op",
]

R = TypeVar("R")

_ENCODER = msgspec.msgpack.Encoder()


class _IdemRecord(msgspec.Struct, frozen=True, array_like=True):
    """``IDEM`` + client + seq -> this. ``fingerprint`` is b"" in records made without one
    (and in those written before it existed)."""

    created_ns: int
    response: msgspec.Raw
    fingerprint: bytes = b""


_IDEM_DECODER = msgspec.msgpack.Decoder(_IdemRecord)


def request_fingerprint(spec: MethodSpec, request: msgspec.Struct) -> bytes:
    """16 bytes naming ``request`` of method ``spec`` exactly: a retry (the same struct sent
    again) has the same fingerprint; any other request, of any method, has another."""
    digest = hashlib.blake2b(spec.name.encode(), digest_size=16)
    digest.update(b"\0")
    digest.update(_ENCODER.encode(request))
    return digest.digest()


def _replay(
    record: _IdemRecord, request_id: RequestId, response_type: type[R], fingerprint: bytes | None
) -> R:
    """The recorded response of ``request_id``; INVALID_ARG when the record belongs to another
    request (another fingerprint, or a response of another type)."""
    reused = ThreeFSError(
        Code.INVALID_ARG,
        f"request id {request_id.client_id.hex()}/{request_id.seq} was already used for another request",
    )
    if fingerprint and record.fingerprint and record.fingerprint != fingerprint:
        raise reused
    try:
        return msgspec.msgpack.decode(record.response, type=response_type)
    except msgspec.DecodeError:  # a record without a fingerprint, of another method
        raise reused from None


_CLOCK_REALTIME_COARSE = getattr(time, "CLOCK_REALTIME_COARSE", 5)  # Linux's id; Python has no name


def file_time_ns() -> int:
    """The time meta stamps on inodes: the coarse real-time clock (one kernel tick, 1-4 ms), the
    clock Linux renders ``UTIME_NOW`` and a FUSE inode's times with. With the precise clock a
    ``touch`` right after a create would send the kernel's older "now" and move mtime back;
    local file systems have the same granularity. Other platforms use ``time.time_ns``."""
    try:
        return time.clock_gettime_ns(_CLOCK_REALTIME_COARSE)
    except (AttributeError, OSError):
        return time.time_ns()


@dataclass
class MetaEnv:
    """What operations need besides the transaction: the engine, the id allocator, the clock
    and the policies (GC delay, root squash rules). One per meta server (and per test)."""

    engine: Engine
    allocator: InodeAllocator
    gc_delay_ns: int = 0
    clock_ns: Callable[[], int] = file_time_ns
    max_retries: int = 50
    extra: dict[str, Any] = field(default_factory=dict)
    write_limiter: trio.CapacityLimiter | None = None
    group_commit: bool = True
    committer: GroupCommitter | None = None

    def __post_init__(self) -> None:
        if self.write_limiter is None and self.engine.serializes_writers:
            self.write_limiter = trio.CapacityLimiter(1)
        if self.group_commit and self.engine.serializes_writers and self.engine.supports_savepoints:
            self.committer = GroupCommitter(
                self.engine, limiter=self.write_limiter, inline_ops=self.engine.local_reads
            )


@dataclass
class OpContext:
    """One attempt of one operation: its transaction, its caller and the time it runs at (one
    ``now_ns`` per attempt, so every time an operation stamps is the same)."""

    txn: Transaction
    caller: Caller
    now_ns: int
    env: MetaEnv

    def new_inode_id(self) -> int:
        return self.env.allocator.allocate()


def _attempt(env: MetaEnv, caller: Caller, request_id: RequestId | None, fn: Callable[[OpContext], R],
             response_type: type[R] | None, fingerprint: bytes | None, txn: Transaction) -> R:  # fmt: skip
    key = None
    if request_id is not None and response_type is not None:
        key = keys.idempotency_key(request_id.client_id, request_id.seq)
        raw = txn.get(key)
        if raw is not None:
            return _replay(_IDEM_DECODER.decode(raw), request_id, response_type, fingerprint)
    ctx = OpContext(txn=txn, caller=caller, now_ns=env.clock_ns(), env=env)
    response = fn(ctx)
    if key is not None:
        record = _IdemRecord(ctx.now_ns, msgspec.Raw(_ENCODER.encode(response)), fingerprint or b"")
        txn.set(key, _ENCODER.encode(record))
    return response


async def run_op(
    env: MetaEnv,
    fn: Callable[[OpContext], R],
    *,
    caller: Caller,
    request_id: RequestId | None = None,
    response_type: type[R] | None = None,
    read_only: bool = False,
    fingerprint: bytes | None = None,
) -> R:
    """Run ``fn`` as one transaction (see the module docstring); raises what ``fn`` raises,
    INVALID_ARG for a used ``request_id`` whose record has another ``fingerprint``, or
    KV_RETRY_LIMIT after ``env.max_retries`` conflicts."""
    if read_only and env.engine.local_reads:
        await trio.lowlevel.checkpoint()
        return execute_op(
            env,
            fn,
            caller=caller,
            request_id=request_id,
            response_type=response_type,
            read_only=True,
            fingerprint=fingerprint,
        )

    def attempt(txn: Transaction) -> R:
        return _attempt(env, caller, request_id, fn, response_type, fingerprint, txn)

    def alone() -> Awaitable[R]:
        return run_transaction_async(
            env.engine,
            attempt,
            read_only=read_only,
            max_retries=env.max_retries,
            limiter=None if read_only else env.write_limiter,
        )

    if not read_only and env.committer is not None:
        return await env.committer.submit(attempt, alone)
    return await alone()


def execute_op(
    env: MetaEnv,
    fn: Callable[[OpContext], R],
    *,
    caller: Caller,
    request_id: RequestId | None = None,
    response_type: type[R] | None = None,
    read_only: bool = False,
    fingerprint: bytes | None = None,
) -> R:
    """``run_op`` for synchronous callers (unit tests, fsck tools)."""
    return run_transaction(
        env.engine,
        lambda txn: _attempt(env, caller, request_id, fn, response_type, fingerprint, txn),
        read_only=read_only,
        max_retries=env.max_retries,
    )


def prune_idempotency_records(env: MetaEnv, older_than_ns: int, batch: int = 1000) -> int:
    """Delete up to ``batch`` records created before ``older_than_ns``; returns how many."""

    def prune(txn: Transaction) -> int:
        begin, end = keys.prefix_range(keys.Prefix.IDEMPOTENCY.value)
        removed = 0
        for key, value in txn.snapshot_get_range(begin, end, limit=batch):
            if _IDEM_DECODER.decode(value).created_ns < older_than_ns:
                txn.clear(key)
                removed += 1
        return removed

    return run_transaction(env.engine, prune, max_retries=env.max_retries)
