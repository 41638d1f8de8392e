"""`threefs up --mount` and `threefs down` while meta is down: neither may ask the mount
anything (its answers wait for meta), so `up` restarts meta at once and the mount serves again,
and `down` unmounts at once. And `up --mount` after the mount's own process died replaces the
dead mount ("Transport endpoint is not connected") with a working one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from threefs.local import ClusterDir
from threefs.local.processes import is_alive
from threefs.mounts import is_mount_point
from threefs.testing.mount import fuse_unavailable

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(fuse_unavailable() is not None, reason=fuse_unavailable() or ""),
]

SHAPE = ["--storage-nodes", "1", "--targets-per-node", "1", "--replicas", "1", "--chunk-size", "64K"]


def threefs(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def meta_pid(data_dir) -> int:
    pid_file = ClusterDir(data_dir).run_dir / "meta-1001.pid"
    return int(pid_file.read_text())


def mount_pid(data_dir) -> int:
    return int((ClusterDir(data_dir).run_dir / "mount.pid").read_text())


def test_up_restarts_meta_or_the_mount_and_down_unmounts_with_meta_down(tmp_path):
    data_dir, mnt = tmp_path / "cluster", tmp_path / "mnt"
    try:
        result = threefs("up", "--data-dir", str(data_dir), "--mount", str(mnt), *SHAPE)
        assert result.returncode == 0, result.stderr
        (mnt / "kept").write_bytes(b"written before meta died")

        os.kill(meta_pid(data_dir), signal.SIGKILL)
        started = time.monotonic()
        result = threefs("up", "--data-dir", str(data_dir), "--mount", str(mnt), timeout=60)
        assert result.returncode == 0, result.stderr
        assert "meta-1001: started" in result.stderr and "Traceback" not in result.stderr
        assert time.monotonic() - started < 25  # the mount's meta retries last 30 s
        assert (mnt / "kept").read_bytes() == b"written before meta died"

        daemon = mount_pid(data_dir)
        os.kill(daemon, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while is_alive(daemon) and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(OSError):
            (mnt / "kept").read_bytes()  # the kernel's mount is left without its daemon
        result = threefs("up", "--data-dir", str(data_dir), "--mount", str(mnt), timeout=60)
        assert result.returncode == 0, result.stderr
        assert "unmounted the dead mount" in result.stderr
        assert (mnt / "kept").read_bytes() == b"written before meta died"

        os.kill(meta_pid(data_dir), signal.SIGKILL)
        started = time.monotonic()
        result = threefs("down", "--data-dir", str(data_dir), timeout=60)
        assert result.returncode == 0, result.stderr
        assert f"{mnt}: unmounted" in result.stderr
        assert time.monotonic() - started < 25
        assert not is_mount_point(mnt)
    finally:
        threefs("down", "--data-dir", str(data_dir))
        if is_mount_point(mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], check=False)
