"""Lazy file length: the exact length of a file from its chunks, recorded when meta's own
figure may be stale.

Writers report where their writes end (Sync ``length_hint``); meta keeps the maximum since the
last truncate. When no hint can be trusted (a close without a hint, or the sessions of a writer
that crashed were pruned), ``fix`` asks storage (``StorageClient.file_length_hint``: the last
chunk of every chain of the stripe) and records the answer, unless the file changed meanwhile
(a new write session, a new length or truncate): the check and the write are one transaction.
Inodes whose fix failed (storage unreachable) stay marked and are tried again by
``run_forever``; the marks live in this server's memory only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgspec
import trio

from meta.ops.context import OpContext, run_op
from meta.store import records
from meta.workers.gc import SERVER_CALLER
from threefs.errors import ThreeFSError
from threefs.wire.meta import Inode, InodeType

if TYPE_CHECKING:
    from meta.app import MetaApp

__all__ = ["LengthKeeper"]

log = logging.getLogger("meta.length")

_RETRY_INTERVAL_S = 2.0


def _idle_file(ctx: OpContext, inode_id: int) -> Inode | None:
    """The file when it has a layout and no write session (else None)."""
    inode = records.load_inode(ctx.txn, inode_id)
    if inode is None or inode.type != InodeType.FILE or inode.layout is None:
        return None
    if records.list_sessions(ctx.txn, inode_id):
        return None
    return inode


def _record_length(ctx: OpContext, seen: Inode, length: int) -> Inode | None:
    """Set the length of ``seen`` when it is still as seen and idle; returns the saved inode."""
    current = _idle_file(ctx, seen.id)
    if current is None or (current.length, current.truncate_version) != (seen.length, seen.truncate_version):
        return None
    if current.length == length:
        return current
    updated = msgspec.structs.replace(current, length=length)
    records.save_inode(ctx.txn, updated)
    return updated


class LengthKeeper:
    """``fix(inode)`` now; ``mark(inode)`` for ``run_forever`` to fix soon."""

    def __init__(self, app: MetaApp) -> None:
        self.app = app
        self.pending: set[int] = set()

    def mark(self, inode_id: int) -> None:
        self.pending.add(inode_id)

    async def fix(self, inode_id: int) -> Inode | None:
        """Record the exact length of file ``inode_id`` if it has no write session; returns the
        inode as recorded, or None (not an idle file, changed meanwhile, or storage failed: then
        it stays marked)."""
        app = self.app
        seen = await run_op(
            app.env, lambda ctx: _idle_file(ctx, inode_id), caller=SERVER_CALLER, read_only=True
        )
        if seen is None or seen.layout is None:
            self.pending.discard(inode_id)
            return None
        try:
            length = await app.storage.file_length_hint(seen.id, seen.layout)
        except ThreeFSError as exc:
            log.warning("length of inode %d from storage failed (retried later): %s", inode_id, exc)
            self.mark(inode_id)
            return None
        self.pending.discard(inode_id)
        recorded = await run_op(app.env, lambda ctx: _record_length(ctx, seen, length), caller=SERVER_CALLER)
        if recorded is not None and recorded.length != seen.length:
            app.metrics.lengths_fixed.inc()
            log.info("inode %d length %d -> %d (from storage)", inode_id, seen.length, length)
        return recorded

    async def run_once(self) -> int:
        """Try every marked inode once; returns how many are still marked."""
        for inode_id in list(self.pending):
            await self.fix(inode_id)
        return len(self.pending)

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # a bug here must not take the server down: log it, go on
                log.exception("length pass failed unexpectedly")
            await trio.sleep(_RETRY_INTERVAL_S)
