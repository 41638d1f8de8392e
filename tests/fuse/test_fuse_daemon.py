"""The daemon and its commands: an unexpected handler error answers EIO and the mount stays up;
``threefs mount`` in the background and ``threefs umount``; the ``mount.threefs`` helper; mount
options (writeback cache, timeouts); clear failures for a bad cluster config or mount point."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from client.cli.mount import _default_log_file

pytestmark = pytest.mark.slow

FAULT_ENV = "THREEFS_FUSE_FAULT_NAME"  # client.fuse.handlers.FAULT_ENV (client.fuse is a leaf)
_BIN = Path(sys.executable).parent


def _threefs(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def _wait_unmounted(path: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while os.path.ismount(path):
        assert time.monotonic() < deadline, f"{path} still mounted"
        time.sleep(0.05)


def test_unexpected_error_answers_eio_and_mount_stays_up(mount_factory) -> None:
    mount = mount_factory(env={FAULT_ENV: "boom"})
    with open(os.path.join(mount.path, "ok"), "wb") as f:
        f.write(b"fine")
    for _ in range(3):
        with pytest.raises(OSError) as info:
            os.stat(os.path.join(mount.path, "boom"))
        assert info.value.errno == errno.EIO
    assert mount.alive()
    assert os.listdir(mount.path) == ["ok"]
    with open(os.path.join(mount.path, "ok"), "rb") as f:
        assert f.read() == b"fine"
    deadline = time.monotonic() + 5
    while "injected fault" not in mount.log_tail(20000):
        assert time.monotonic() < deadline, "the traceback was not logged"
        time.sleep(0.05)
    assert "Traceback" in mount.log_tail(20000)


def test_background_mount_and_umount(mounted, tmp_path) -> None:
    mountpoint = str(tmp_path / "bg")
    os.mkdir(mountpoint)
    log_file = str(tmp_path / "bg.log")
    try:
        done = _threefs(
            "mount", mountpoint, "--cluster-config", str(mounted.config_file), "--log-file", log_file,
            "-o", "allow_other,attr_timeout=1,entry_timeout=1",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "mounted on" in done.stdout
        assert os.path.ismount(mountpoint)  # usable as soon as the command returns
        with open(os.path.join(mountpoint, "via-bg"), "wb") as f:
            f.write(b"background")
        with open(os.path.join(mounted.path, "via-bg"), "rb") as f:
            assert f.read() == b"background"
        done = _threefs("umount", mountpoint)
        assert done.returncode == 0, done.stderr
        _wait_unmounted(mountpoint)
        deadline = time.monotonic() + 10  # the daemon logs it just after the kernel lets go
        while "unmounted" not in Path(log_file).read_text():
            assert time.monotonic() < deadline, Path(log_file).read_text()
            time.sleep(0.05)
    finally:
        if os.path.ismount(mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", mountpoint], check=False)


def test_mount_helper_for_fstab(mounted, tmp_path) -> None:
    helper = shutil.which("mount.threefs", path=str(_BIN))
    if helper is None:
        pytest.skip("mount.threefs is not installed (pip install -e .)")
    mountpoint = str(tmp_path / "fstab")
    os.mkdir(mountpoint)
    try:
        done = subprocess.run(
            [helper, str(mounted.config_file), mountpoint, "-o", "rw,allow_other,_netdev,defaults"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert os.path.ismount(mountpoint)
        assert os.listdir(mountpoint) == []
    finally:
        if os.path.ismount(mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", mountpoint], check=False)
            _wait_unmounted(mountpoint)
        # the helper logs where a background mount does by default: leave nothing in /tmp
        Path(_default_log_file(mountpoint)).unlink(missing_ok=True)


def test_writeback_and_timeouts(mount_factory) -> None:
    mount = mount_factory(options=("writeback", "attr_timeout=1", "entry_timeout=1", "write_buffer=1m"))
    path = os.path.join(mount.path, "wb")
    data = os.urandom(300_000)
    with open(path, "wb") as f:
        for start in range(0, len(data), 4096):
            f.write(data[start : start + 4096])
    assert os.stat(path).st_size == len(data)
    with open(path, "rb") as f:
        assert f.read() == data
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, b"patch", 70_000)
        os.fsync(fd)
    finally:
        os.close(fd)
    other = mount.second_mount(options=())
    with open(os.path.join(other.path, "wb"), "rb") as f:
        assert f.read() == data[:70_000] + b"patch" + data[70_005:]


def test_bad_cluster_config_fails_clearly(tmp_path) -> None:
    mountpoint = tmp_path / "m"
    mountpoint.mkdir()
    done = _threefs("mount", str(mountpoint), "--cluster-config", str(tmp_path / "missing.toml"), "-f")
    assert done.returncode == 2
    assert "error:" in done.stderr and "Traceback" not in done.stderr
    done = _threefs("mount", str(mountpoint), "--mgmtd", "127.0.0.1:1", "-o", "bogus_option")
    assert done.returncode == 2
    assert "bogus_option" in done.stderr or "secret" in done.stderr
    assert not os.path.ismount(mountpoint)


def test_mount_point_must_be_a_free_directory(mounted, tmp_path) -> None:
    done = _threefs("mount", mounted.path, "--cluster-config", str(mounted.config_file), "-f")
    assert done.returncode == 1
    assert "already a mount point" in done.stderr
    done = _threefs("umount", str(tmp_path))
    assert done.returncode != 0 and "not mounted" in done.stderr


def test_close_to_open_with_long_attribute_timeouts(mount_factory) -> None:
    """With attributes cached for a minute, an open still sees what another client wrote and
    closed: the open drops the kernel's cached attributes (size) of the file."""
    reader = mount_factory(options=("attr_timeout=60", "entry_timeout=60"))
    writer = reader.second_mount(options=())
    path = os.path.join(reader.path, "grows")
    with open(path, "wb") as f:
        f.write(b"old")
    assert os.stat(path).st_size == 3  # cached by the reader's kernel for 60 s
    data = os.urandom(200_000)
    with open(os.path.join(writer.path, "grows"), "ab") as f:
        f.write(data)
    with open(path, "rb") as f:  # close-to-open: the new length and bytes
        assert f.read() == b"old" + data
    assert os.stat(path).st_size == 3 + len(data)
    with open(os.path.join(writer.path, "grows"), "r+b") as f:
        f.truncate(10)
    with open(path, "rb") as f:
        assert f.read() == (b"old" + data)[:10]
