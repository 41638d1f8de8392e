"""The FUSE daemon's life: connect to the cluster, mount, serve until unmounted, clean up.

``run_mount(mountpoint, cluster=..., secret=..., options=...)`` blocks until the file system is
unmounted (``threefs umount``, ``fusermount3 -u``) or the process gets SIGTERM/SIGINT, and
returns the exit status. It reaches the cluster (routing info from mgmtd) *before* mounting,
so a wrong address or secret fails the command instead of leaving a mount that answers EIO.
``ready`` (a callable) is called once the mount is in place: ``threefs mount`` without ``-f``
uses it to return only when the mount is usable (see ``client.cli.mount``).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

import pyfuse3
import trio

from client.config import ClusterConfig
from client.fuse.ops import ThreeFSOperations
from client.fuse.options import MountOptions
from client.meta import MetaClient
from client.mgmtd import MgmtdClient
from client.routing import RoutingCache
from client.storage import StorageClient
from threefs.errors import Code, ThreeFSError
from threefs.mounts import is_mount_point
from threefs.rpc import RpcClient, UserToken

__all__ = ["ROUTING_REFRESH_S", "run_mount"]

log = logging.getLogger("client.fuse")

ROUTING_REFRESH_S = 5.0


def _check_mountpoint(mountpoint: str) -> None:
    if is_mount_point(mountpoint):  # first: a stat of a mounted path may wait on its daemon
        raise ThreeFSError(Code.CLIENT_MOUNT_FAILED, f"{mountpoint} is already a mount point")
    if not os.path.isdir(mountpoint):
        raise ThreeFSError(Code.CLIENT_MOUNT_FAILED, f"mount point {mountpoint} is not a directory")


def fuse_init_options(options: MountOptions) -> set[str]:
    """What ``pyfuse3.init`` gets: the passed options, a name, no ``default_permissions`` unless
    asked (meta checks permissions for the caller of each request)."""
    names = {"fsname=threefs", "subtype=threefs"}
    given = {o.split("=", 1)[0] for o in options.fuse_options}
    chosen = {o for o in names if o.split("=", 1)[0] not in given} | set(options.fuse_options)
    if options.debug:
        chosen.add("debug")
    return chosen


async def _stop_on_signals() -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            log.info("signal %d: unmounting", signum)
            pyfuse3.terminate()
            return


async def _serve(
    mountpoint: str,
    cluster: ClusterConfig,
    secret: bytes | UserToken,
    options: MountOptions,
    ready: Callable[[], None] | None,
) -> None:
    async with RpcClient(secret) as rpc:
        mgmtd = MgmtdClient(cluster.mgmtd_addresses, rpc=rpc, config=cluster.mgmtd_client)
        routing = RoutingCache(mgmtd)
        await routing.refresh()
        meta = MetaClient(rpc, routing=routing)
        storage = StorageClient(rpc, routing, cluster.storage_client)
        operations = ThreeFSOperations(meta, storage, options)
        try:
            pyfuse3.init(operations, mountpoint, fuse_init_options(options))
        except RuntimeError as exc:
            raise ThreeFSError(Code.CLIENT_MOUNT_FAILED, f"mounting {mountpoint}: {exc}") from exc
        try:
            log.info("threefs mounted on %s (options %s)", mountpoint, sorted(fuse_init_options(options)))
            if ready is not None:
                ready()
            async with trio.open_nursery() as nursery:
                operations.files.nursery = nursery  # background stores (write-behind)
                nursery.start_soon(routing.run_refresher, ROUTING_REFRESH_S)
                nursery.start_soon(_stop_on_signals)
                await pyfuse3.main(max_tasks=options.max_tasks)
                nursery.cancel_scope.cancel()
        finally:
            pyfuse3.close(unmount=True)
        log.info("threefs unmounted from %s", mountpoint)


def run_mount(
    mountpoint: str,
    *,
    cluster: ClusterConfig,
    secret: bytes | UserToken,
    options: MountOptions,
    ready: Callable[[], None] | None = None,
) -> int:
    """Mount and serve until unmounted; returns 0. ``secret``: the cluster secret or a user
    token (meta then refuses requests of local users the token may not act for). Raises
    ``ThreeFSError`` (CLIENT_MOUNT_FAILED, the cluster's errors) when the mount cannot be set
    up."""
    mountpoint = os.path.abspath(mountpoint)
    _check_mountpoint(mountpoint)
    trio.run(_serve, mountpoint, cluster, secret, options, ready)
    return 0
