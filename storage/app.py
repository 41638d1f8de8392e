"""One storage node under trio: its targets, the RPC server, the metrics endpoint, and the
heartbeat, routing and resync workers. ``storage.main`` runs it as a process; tests run several
in one process (with in-memory stores through ``open_store``)."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import trio

from client.mgmtd import MgmtdClient
from client.routing import RoutingCache
from client.users import mgmtd_user_directory
from storage.components.targets import OpenStore, TargetRegistry, open_disk_target
from storage.config import StorageConfig
from storage.service import StorageService
from storage.state import NowMs, StorageState, system_now_ms
from storage.workers import Heartbeater, Resyncer, RoutingRefresher
from threefs.rpc import RpcClient, RpcServer, format_address
from threefs.service.node_config import advertise_address

__all__ = ["StorageApp"]

log = logging.getLogger("storage")

MANIFEST_NAME = "targets.json"


def _disk_opener(config: StorageConfig) -> OpenStore:
    def open_store(target_id: int, path: Path):  # type: ignore[no-untyped-def]
        return open_disk_target(path, target_id, config.cluster_id, fsync=config.fsync)

    return open_store


class StorageApp:
    """A storage node's parts, wired together. ``await nursery.start(app.run)`` returns once its
    targets are open and the RPC server listens; the workers (first heartbeat, first routing
    fetch) start then, in the background. Cancelling it stops everything and closes the stores.

    ``open_store(target_id, path)`` opens a target's store (default: a ``DiskChunkStore`` with a
    marker file; created targets are then remembered in ``<data_dir>/targets.json``).
    """

    def __init__(
        self,
        config: StorageConfig,
        secret: str | bytes,
        *,
        open_store: OpenStore | None = None,
        now_ms: NowMs = system_now_ms,
    ) -> None:
        self.config = config
        manifest = Path(config.data_dir) / MANIFEST_NAME if open_store is None else None
        self.targets = TargetRegistry(open_store or _disk_opener(config), manifest)
        self.rpc = RpcClient(secret, config.rpc_client)
        self.mgmtd = MgmtdClient(config.mgmtd_addresses, rpc=self.rpc, config=config.mgmtd_client)
        self.routing = RoutingCache(self.mgmtd)
        self.state = StorageState(config, self.targets, self.rpc, self.routing, now_ms=now_ms)
        self.service = StorageService(self.state)
        self.users = mgmtd_user_directory(self.mgmtd)  # user tokens are checked against mgmtd's users
        self.server = RpcServer(secret, [self.service], config.rpc, users=self.users)
        self.heartbeater = Heartbeater(self.state, self.mgmtd)
        self.routing_refresher = RoutingRefresher(self.state)
        self.resyncer = Resyncer(self.state)
        self.port = 0  # the bound RPC port, once listening
        self.metrics_port = 0  # the bound metrics port (0: off)

    @property
    def address(self) -> str:
        return self.state.address

    def _open_targets(self) -> None:
        """Open every configured and remembered target (blocking)."""
        wanted = {t.target_id: self.config.target_path(t) for t in self.config.targets}
        for target_id, path in self.targets.remembered():
            wanted.setdefault(target_id, path)
        for target_id, path in sorted(wanted.items()):
            target = self.targets.open(target_id, path, keep_failed=True)
            if not target.failed:
                log.info("target %d at %s", target_id, path)

    async def run(self, *, task_status: trio.TaskStatus[StorageApp] = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        try:
            await trio.to_thread.run_sync(self._open_targets)
            async with self.rpc, trio.open_nursery() as nursery:
                self.port = await nursery.start(self.server.serve, config.listen_host, config.listen_port)
                self.state.address = advertise_address(config, self.port)
                if config.metrics_port >= 0:
                    host = config.metrics_host or config.listen_host
                    self.metrics_port = await nursery.start(
                        self.state.metrics.serve, host, config.metrics_port
                    )
                    log.info("metrics on %s", format_address((host, self.metrics_port)))
                nursery.start_soon(self.heartbeater.run_forever)
                nursery.start_soon(self.routing_refresher.run_forever)
                nursery.start_soon(self.users.run_forever, config.routing_refresh_s)
                nursery.start_soon(self.resyncer.run_forever)
                log.info(
                    "storage node %d of cluster %r serving %d target(s) at %s",
                    config.node_id,
                    config.cluster_id,
                    len(self.targets),
                    self.state.address,
                )
                task_status.started(self)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(partial(self.targets.close_all))
