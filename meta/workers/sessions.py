"""The session pruner: drops the write sessions of clients that stopped heartbeating, and old
idempotency records.

Every ``session_prune_interval_s`` it lists the CLIENT nodes at mgmtd; a session whose client
node is not among the ACTIVE ones (FAILED, DISABLED, or no longer known) is pruned by
``meta.ops.sync.prune_sessions`` (sessions of unregistered clients, node 0, are left alone:
nothing says they are dead). A file whose last session went this way may have a stale length
(its writer never reported the end of its writes), so its length is recomputed from storage
(``LengthKeeper``). The same pass deletes idempotency records older than
``idempotency_retention_s`` (clients retry for far less). Nothing is pruned when mgmtd cannot
be asked.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from meta.ops.context import prune_idempotency_records, run_op
from meta.ops.sync import all_sessions, prune_sessions
from meta.workers.gc import SERVER_CALLER
from threefs.errors import ThreeFSError
from threefs.wire.mgmtd import NodeStatus

if TYPE_CHECKING:
    from meta.app import MetaApp

__all__ = ["SessionPruner"]

log = logging.getLogger("meta.sessions")


class SessionPruner:
    """``run_once`` prunes once; ``run_forever`` repeats (see the module docstring)."""

    def __init__(self, app: MetaApp) -> None:
        self.app = app

    async def run_once(self) -> int:
        """One pass; returns how many sessions were pruned."""
        app = self.app
        try:
            clients = await app.mgmtd.list_client_sessions()
        except ThreeFSError as exc:
            log.warning("cannot list clients at mgmtd (no pruning this time): %s", exc)
            return 0
        alive = {c.node_id for c in clients if c.status == NodeStatus.ACTIVE}
        sessions = await run_op(app.env, all_sessions, caller=SERVER_CALLER, read_only=True)
        dead = {s.client_node for s in sessions if s.client_node and s.client_node not in alive}
        pruned = 0
        if dead:
            pruned = await run_op(
                app.env, lambda ctx: prune_sessions(ctx, dead_nodes=dead), caller=SERVER_CALLER
            )
            for session in sessions:
                if session.client_node in dead:
                    app.lengths.mark(session.inode)
            app.metrics.sessions_pruned.inc(pruned)
            log.info("pruned %d write session(s) of dead client node(s) %s", pruned, sorted(dead))
            app.gc.wake()  # unlinked files whose last session went are queued now
            await app.lengths.run_once()
        older_than = app.env.clock_ns() - int(app.config.idempotency_retention_s * 1e9)
        while await trio.to_thread.run_sync(prune_idempotency_records, app.env, older_than) > 0:
            pass
        return pruned

    async def run_forever(self) -> None:
        while True:
            await trio.sleep(self.app.config.session_prune_interval_s)
            try:
                await self.run_once()
            except Exception:  # a bug here must not take the server down: log it, go on
                log.exception("session prune failed unexpectedly")
