"""The heartbeat worker: registers this meta server with mgmtd (type META, its address) and
keeps it ACTIVE. Clients find meta servers in the routing info's nodes. The interval is
``heartbeat_interval_s``, or the one mgmtd names in its replies when that is 0."""

from __future__ import annotations

import logging
import socket
import time
from typing import TYPE_CHECKING

import trio

from threefs import __version__
from threefs.errors import ThreeFSError
from threefs.wire.mgmtd import HeartbeatRequest, HeartbeatResponse, NodeType

if TYPE_CHECKING:
    from meta.app import MetaApp

__all__ = ["Heartbeater"]

log = logging.getLogger("meta.heartbeat")

_FIRST_INTERVAL_S = 1.0


class Heartbeater:
    """``run_once`` sends one heartbeat; ``run_forever`` repeats."""

    def __init__(self, app: MetaApp) -> None:
        self.app = app
        self.seq = 0
        self.started_ms = int(time.time() * 1000)
        self.interval_s = app.config.heartbeat_interval_s or _FIRST_INTERVAL_S
        self.hostname = socket.gethostname()
        self.accepted = 0

    async def run_once(self) -> HeartbeatResponse | None:
        """Send one heartbeat; returns mgmtd's reply, or None when it failed (logged)."""
        app = self.app
        self.seq += 1
        request = HeartbeatRequest(
            cluster_id=app.config.cluster_id,
            node_id=app.config.node_id,
            node_type=NodeType.META,
            seq=self.seq,
            sent_ms=int(time.time() * 1000),
            started_ms=self.started_ms,
            hostname=self.hostname,
            addresses=[app.address] if app.address else [],
            version=__version__,
        )
        try:
            response = await app.mgmtd.heartbeat(request, timeout_s=max(2 * self.interval_s, 1.0))
        except ThreeFSError as exc:
            log.warning("heartbeat %d failed: %s", self.seq, exc)
            return None
        self.accepted += 1
        if not app.config.heartbeat_interval_s and response.heartbeat_interval_ms:
            self.interval_s = response.heartbeat_interval_ms / 1000
        if response.routing_version > app.routing.version:
            try:
                await app.routing.refresh()
            except ThreeFSError as exc:
                log.warning("routing refresh after heartbeat failed: %s", exc)
        return response

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # a bug here must not take the server down: log it, beat again
                log.exception("heartbeat %d failed unexpectedly", self.seq)
            await trio.sleep(self.interval_s)
