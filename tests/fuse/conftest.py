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

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import trio

from client.meta import MetaClient
from threefs.rpc import RpcClient
from threefs.testing.cluster import LocalCluster
from threefs.wire.meta import Caller

CHUNK_SIZE = 64 << 10
MOUNT_TIMEOUT_S = 30.0
_ROOT = Path(__file__).resolve().parents[2]


def fuse_unavailable() -> str | None:
    """Why FUSE tests cannot run here (None when they can)."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is absent"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (Debian package fuse3)"
    if os.geteuid() != 0:
        return "FUSE tests run as root (allow_other and setuid children)"
    return None


def write_cluster_config(cluster: LocalCluster, path: Path) -> Path:
    """A client cluster config (``client.config.ClusterConfig``) for ``cluster`` at ``path``."""
    path.write_text(
        f'mgmtd_addresses = ["{cluster.mgmtd_address}"]\ncluster_secret_file = "{cluster.secret_file}"\n'
    )
    return path


class FuseMount:
    """One ``threefs mount -f`` subprocess and its mount point (see the module docstring)."""

    def __init__(
        self,
        cluster: LocalCluster,
        config_file: Path,
        path: str,
        *,
        options: Sequence[str] = (),
        env: dict[str, str] | None = None,
        registry: list[FuseMount] | None = None,
    ) -> None:
        self.cluster = cluster
        self.config_file = config_file
        self.path = path
        self.options = list(options)
        self.env = dict(env or {})
        self.log_path = Path(path + ".log")
        self.process: subprocess.Popen[bytes] | None = None
        self._registry = registry if registry is not None else []
        self._registry.append(self)

    def command(self) -> list[str]:
        options = ",".join(["allow_other", *self.options])
        return [
            sys.executable, "-m", "client.cli", "-v", "mount", self.path,
            "--cluster-config", str(self.config_file), "-f", "-o", options,
        ]  # fmt: skip

    def mount(self) -> FuseMount:
        """Start the daemon and wait (with a deadline) until the mount point is mounted."""
        os.makedirs(self.path, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=_ROOT,
                env={**os.environ, **self.env},
            )
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while not os.path.ismount(self.path):
            if self.process.poll() is not None:
                raise RuntimeError(f"threefs mount exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.unmount()
                raise RuntimeError(f"{self.path} not mounted after {MOUNT_TIMEOUT_S} s:\n{self.log_tail()}")
            time.sleep(0.02)
        return self

    def unmount(self) -> None:
        """``fusermount3 -u -z``, then wait for the daemon (killed after a deadline)."""
        if os.path.ismount(self.path):
            subprocess.run(["fusermount3", "-u", "-z", self.path], check=False, capture_output=True)
        if self.process is not None:
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait()
            self.process = None

    def remount(self) -> FuseMount:
        """Unmount and mount again (same options): nothing cached survives."""
        self.unmount()
        return self.mount()

    def second_mount(self, *, options: Sequence[str] | None = None) -> FuseMount:
        """Another mount of the same cluster (another client), unmounted at teardown."""
        other = FuseMount(
            self.cluster,
            self.config_file,
            tempfile.mkdtemp(prefix="threefs-mnt2-"),
            options=self.options if options is None else options,
            env=self.env,
            registry=self._registry,
        )
        return other.mount()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-limit:].decode(errors="replace")
        except OSError:
            return "(no log)"


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
