"""Fixtures for the real-mount FUSE tests: a local cluster per session and a fresh mount per test.

- ``fuse_cluster`` (session): a ``LocalCluster`` (1 storage node, replication 1, 64 KiB chunks so
  multi-chunk I/O is cheap, GC without delay) started once; its processes outlive ``trio.run``.
- ``mounted`` (function): ``threefs mount -f`` of that cluster as a subprocess on a temporary
  mount point, waited for with a deadline; a ``FuseMount`` with ``.path`` (the mount point),
  ``.cluster``, ``.config_file``, ``.log_path``, ``.remount()`` (unmount and mount again: a cold
  kernel cache) and ``.second_mount()`` (another mount of the same cluster: a second client).
  On teardown the file system is emptied (so tests do not see each other's files) and every
  mount is taken down with ``fusermount3 -u -z`` even when the test failed.
- ``mount_factory`` (function): ``mount_factory(options=("attr_timeout=1",), env={...})`` for a
  mount with other options (same teardown).

Everything here is skipped, with the reason, where FUSE is unavailable (no ``/dev/fuse``, no
``fusermount3``, not root: the tests need ``allow_other`` and setuid children).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import trio

from client.meta import MetaClient
from threefs.rpc import RpcClient
from threefs.testing.cluster import LocalCluster
from threefs.testing.mount import FuseMount, fuse_unavailable, write_cluster_config
from threefs.wire.meta import Caller

CHUNK_SIZE = 64 << 10


@pytest.fixture(scope="session")
def fuse_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    cluster = LocalCluster(
        tmp_path_factory.mktemp("fuse-cluster"),
        storage_nodes=1,
        replication=1,
        chunk_size=CHUNK_SIZE,
        meta_config_extra=f"default_chunk_size = {CHUNK_SIZE}\n",
    )
    trio.run(cluster.start)
    try:
        yield cluster
    finally:
        trio.run(cluster.stop)


async def _empty_root(cluster: LocalCluster) -> None:
    """Remove everything in the root, one recursive remove per entry straight at meta (fast, and
    independent of the state the test left the mount in)."""
    async with RpcClient(cluster.secret) as rpc:
        meta = MetaClient(rpc, addresses=cluster.meta_addresses, caller=Caller(uid=0, gid=0, admin=True))
        for entry in await meta.list_all("/"):
            await meta.remove(b"/" + entry.name, recursive=True)


@pytest.fixture
def mount_factory(fuse_cluster: LocalCluster, tmp_path: Path) -> Iterator[Callable[..., FuseMount]]:
    """``mount_factory(options=(), env=None)``: a started ``FuseMount``; all unmounted after."""
    config_file = write_cluster_config(fuse_cluster, tmp_path / "cluster.toml")
    mounts: list[FuseMount] = []

    def make(options: Sequence[str] = (), env: dict[str, str] | None = None) -> FuseMount:
        path = tempfile.mkdtemp(prefix="threefs-mnt-")
        return FuseMount(fuse_cluster, config_file, path, options=options, env=env, registry=mounts).mount()

    try:
        yield make
    finally:
        for mount in mounts:
            mount.unmount()
            shutil.rmtree(mount.path, ignore_errors=True)
            mount.log_path.unlink(missing_ok=True)  # leave nothing in /tmp
        trio.run(_empty_root, fuse_cluster)


@pytest.fixture
def mounted(mount_factory: Callable[..., FuseMount]) -> FuseMount:
    """A fresh mount of the session's cluster, with an empty root (see the module docstring)."""
    return mount_factory()
