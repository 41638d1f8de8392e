"""A ``threefs mount -f`` subprocess for tests and the chaos harness (``FuseMount``), and the
client cluster config it mounts with (``write_cluster_config``).

``FuseMount(cluster, config_file, path).mount()`` starts the daemon with ``allow_other`` (plus
``options``) and returns once ``path`` is mounted, within ``MOUNT_TIMEOUT_S``; ``unmount()``
runs ``fusermount3 -u -z`` and waits for the daemon (killed after a deadline). The daemon's
output goes to ``<path>.log``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from threefs.testing.cluster import LocalCluster

__all__ = ["MOUNT_TIMEOUT_S", "FuseMount", "fuse_unavailable", "write_cluster_config"]

MOUNT_TIMEOUT_S = 30.0
_ROOT = Path(__file__).resolve().parents[2]


def fuse_unavailable() -> str | None:
    """Why a real mount cannot be made here (None when it can): mounts in tests need
    ``/dev/fuse``, ``fusermount3`` and root (``allow_other`` and setuid children)."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is absent"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (Debian package fuse3)"
    if os.geteuid() != 0:
        return "FUSE tests run as root (allow_other and setuid children)"
    return None


def write_cluster_config(cluster: LocalCluster, path: Path) -> Path:
    """A client cluster config (``client.config.ClusterConfig``) for ``cluster`` at ``path``:
    every mgmtd's address and the secret file."""
    addresses = ", ".join(f'"{address}"' for address in cluster.mgmtd_addresses)
    path.write_text(f'mgmtd_addresses = [{addresses}]\ncluster_secret_file = "{cluster.secret_file}"\n')
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

    # the daemon's working directory
    cwd: str | Path = _ROOT

    def is_mounted(self) -> bool:
        """Whether the mount is up (the kernel lists it)."""
        return os.path.ismount(self.path)

    def mount(self) -> FuseMount:
        """Start the daemon and wait (with a deadline) until the mount point is mounted."""
        os.makedirs(self.path, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.cwd,
                env={**os.environ, **self.env},
            )
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while not self.is_mounted():
            if self.process.poll() is not None:
                raise RuntimeError(f"threefs mount exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.unmount()
                raise RuntimeError(f"{self.path} not mounted after {MOUNT_TIMEOUT_S} s:\n{self.log_tail()}")
            time.sleep(0.02)
        return self

    def unmount(self) -> None:
        """``fusermount3 -u -z``, then wait for the daemon (killed after a deadline)."""
        if self.is_mounted():
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
