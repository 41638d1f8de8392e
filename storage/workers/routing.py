"""The routing worker: refreshes the node's routing cache every ``routing_refresh_s`` (requests
and heartbeat replies refresh it sooner when they see a newer version) and moves the targets'
local states on after each refresh."""

from __future__ import annotations

import logging

import trio

from storage.state import StorageState

__all__ = ["RoutingRefresher"]

log = logging.getLogger("storage.routing")


class RoutingRefresher:
    """``run_once`` refreshes once; ``run_forever`` repeats every ``routing_refresh_s``."""

    def __init__(self, state: StorageState) -> None:
        self.state = state

    async def run_once(self) -> int:
        """Refresh and follow the routing; returns the cached routing version (0: none yet)."""
        await self.state.refresh_routing()
        return self.state.routing.version

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # a bug here must not take the node down: log it, go on
                log.exception("routing refresh failed unexpectedly")
            await trio.sleep(self.state.config.routing_refresh_s)
