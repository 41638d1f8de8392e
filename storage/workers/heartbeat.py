"""The heartbeat worker: registers this node with mgmtd and reports its targets' local states.

Every heartbeat carries ``started_ms`` (this process's start) and ``seq`` (from 1), so mgmtd
orders every heartbeat of the node across restarts; the node's address; and per target its local
state (recomputed just before sending, ``storage.components.local_state``: when a target may
claim UPTODATE, routing is fetched first so the claim is made from current routing), the chain
version it has seen and its space. A reply whose routing version is newer than the cached
one triggers a routing refresh. The interval is ``heartbeat_interval_s``, or the one mgmtd names
in its replies when that is 0; a local-state change (a sync done, a failed disk) sends the next
heartbeat at once.
"""

from __future__ import annotations

import logging
import socket

from client.mgmtd import MgmtdClient
from storage.state import StorageState
from threefs import __version__
from threefs.errors import ThreeFSError
from threefs.wire.mgmtd import HeartbeatRequest, HeartbeatResponse, NodeType, TargetReport

__all__ = ["Heartbeater"]

log = logging.getLogger("storage.heartbeat")

_FIRST_INTERVAL_S = 1.0


class Heartbeater:
    """``run_once`` sends one heartbeat; ``run_forever`` repeats (see the module docstring)."""

    def __init__(self, state: StorageState, mgmtd: MgmtdClient) -> None:
        self.state = state
        self.mgmtd = mgmtd
        self.seq = 0
        self.interval_s = state.config.heartbeat_interval_s or _FIRST_INTERVAL_S
        self.hostname = socket.gethostname()
        self.accepted = 0

    async def _reports(self) -> list[TargetReport]:
        state = self.state
        if state.targets.promotion_pending(state.routing_info()):
            # An UPTODATE claim is made from current routing only.
            await state.refresh_routing(timeout_s=max(2 * self.interval_s, 1.0))
        routing = state.routing_info()
        state.targets.update_local_states(routing, promote=True)
        reports = []
        for target in state.targets:
            if not target.failed:
                try:
                    target.space = await state.store_call(target, target.store.space, read=True)
                except ThreeFSError as exc:
                    log.warning("space of target %d: %s", target.target_id, exc)
            info = routing.targets.get(target.target_id) if routing is not None else None
            chain = routing.chains.get(info.chain_id) if routing is not None and info is not None else None
            space = target.space
            reports.append(
                TargetReport(
                    target_id=target.target_id,
                    local_state=target.local_state,
                    chain_version=chain.chain_version if chain is not None else 0,
                    used_bytes=space.used_bytes if space else 0,
                    capacity_bytes=space.capacity_bytes if space else 0,
                )
            )
        return reports

    async def run_once(self) -> HeartbeatResponse | None:
        """Send one heartbeat; returns mgmtd's reply, or None when it failed (logged)."""
        state = self.state
        reports = await self._reports()
        self.seq += 1
        request = HeartbeatRequest(
            cluster_id=state.config.cluster_id,
            node_id=state.node_id,
            node_type=NodeType.STORAGE,
            seq=self.seq,
            sent_ms=state.now_ms(),
            started_ms=state.started_ms,
            hostname=self.hostname,
            addresses=[state.address] if state.address else [],
            version=__version__,
            targets=reports,
        )
        try:
            response = await self.mgmtd.heartbeat(request, timeout_s=max(2 * self.interval_s, 1.0))
        except ThreeFSError as exc:
            log.warning("heartbeat %d failed: %s", self.seq, exc)
            return None
        self.accepted += 1
        if not state.config.heartbeat_interval_s and response.heartbeat_interval_ms:
            self.interval_s = response.heartbeat_interval_ms / 1000
        if response.routing_version > state.routing.version:
            await state.refresh_routing()
        return response

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # a bug here must not take the node down: log it, beat again
                log.exception("heartbeat %d failed unexpectedly", self.seq)
            await self.state.wait_heartbeat_wakeup(self.interval_s)
