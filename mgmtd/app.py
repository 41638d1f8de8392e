"""One mgmtd under trio: the RPC server, the metrics endpoint, the lease keeper, the heartbeat
checker and the chain updater. ``mgmtd.main`` runs it as a process; tests run it in-process."""

from __future__ import annotations

import logging

import trio

from mgmtd.config import MgmtdConfig
from mgmtd.metrics import MgmtdMetrics
from mgmtd.ops.users import USER_REFRESH_S
from mgmtd.service import MgmtdService
from mgmtd.state import MgmtdState, NowMs, system_now_ms
from mgmtd.workers import ChainUpdater, HeartbeatChecker, LeaseKeeper
from threefs.kv import Engine
from threefs.rpc import RpcServer, format_address
from threefs.service.node_config import advertise_address

__all__ = ["MgmtdApp"]

log = logging.getLogger("mgmtd")

_RELEASE_TIMEOUT_S = 2.0


class MgmtdApp:
    """A mgmtd's parts, wired together. ``await nursery.start(app.run)`` returns once the RPC
    server listens and a first lease check is done (so a lone mgmtd is primary by then);
    cancelling it gives the lease up (when held) and stops everything."""

    def __init__(
        self, config: MgmtdConfig, secret: str | bytes, engine: Engine, *, now_ms: NowMs = system_now_ms
    ) -> None:
        self.config = config
        self.state = MgmtdState(config, engine, now_ms=now_ms)
        self.service = MgmtdService(self.state)
        self.server = RpcServer(secret, [self.service], config.rpc, users=self.service.users)
        self.metrics = MgmtdMetrics(self.state)
        self.lease_keeper = LeaseKeeper(self.state)
        self.heartbeat_checker = HeartbeatChecker(self.state)
        self.chain_updater = ChainUpdater(self.state)
        self.port = 0  # the bound RPC port, once listening
        self.metrics_port = 0  # the bound metrics port (0: off)

    async def run(self, *, task_status: trio.TaskStatus[MgmtdApp] = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        try:
            async with trio.open_nursery() as nursery:
                self.port = await nursery.start(self.server.serve, config.listen_host, config.listen_port)
                self.state.address = advertise_address(config, self.port)
                if config.metrics_port >= 0:
                    host = config.metrics_host or config.listen_host
                    self.metrics_port = await nursery.start(self.metrics.serve, host, config.metrics_port)
                    log.info("metrics on %s", format_address((host, self.metrics_port)))
                await self.lease_keeper.run_once()
                nursery.start_soon(self.lease_keeper.run_forever)
                nursery.start_soon(self.service.users.run_forever, USER_REFRESH_S)
                nursery.start_soon(self.heartbeat_checker.run_forever)
                nursery.start_soon(self.chain_updater.run_forever)
                log.info(
                    "mgmtd %d serving cluster %r at %s (%s)",
                    config.node_id,
                    config.cluster_id,
                    self.state.address,
                    "primary" if self.state.is_primary else "secondary",
                )
                task_status.started(self)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(_RELEASE_TIMEOUT_S):
                await self.lease_keeper.release()
