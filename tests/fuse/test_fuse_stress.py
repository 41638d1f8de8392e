"""Third-party checks against the mount: stress-ng file-system stressors with ``--verify``, CPython's
own test modules run with their temporary directory on the mount, and two clients (two mounts, a
mount and the library) seeing each other's writes after close.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

# ----------------------------------------------------------------------------- stress-ng

# Stressors that fit a FUSE file system and pass on pyfuse3's passthrough example too (checked
# with stress-ng 0.15). Each runs alone (together, on two cores and one daemon thread, most
# managed no operation at all) and must complete at least one operation. Left out:
# - fallocate: pyfuse3 has no fallocate handler, so every call fails (EOPNOTSUPP, which the
#   stressor accepts) and what remains is pwrite/fsync, as in hdd and sync-file; it managed
#   0.5 operations/s on the mount;
# - xattr: one operation sets attributes on a file until the file system refuses more (ext4:
#   about 200 calls per operation, the space of one block); threefs has no per-inode limit, and
#   3,114 setxattr calls in 15 s completed no operation (the real-mount tests cover xattrs);
# - link/symlink: their clean-up of thousands of names took 20 s (the differential test covers
#   hard links).
STRESSORS = {
    "hdd": "--hdd 1 --hdd-bytes 8M",
    "mmap": "--mmap 1 --mmap-bytes 8M --mmap-file",
    "seek": "--seek 1 --seek-size 8M",
    "sync-file": "--sync-file 1 --sync-file-bytes 2M",  # one op must fit 3 s on a loaded machine
    "dir": "--dir 1 --dir-dirs 512",
    "dentry": "--dentry 1 --dentries 512",
    "rename": "--rename 1",
    "open": "--open 1",
}
STRESS_SECONDS = 3
_BOGO_OPS = re.compile(r"metrc: \[\d+\] (\S+)\s+(\d+)\s+[\d.]+\s+[\d.]+\s+[\d.]+")


@pytest.mark.skipif(
    shutil.which("stress-ng") is None, reason="stress-ng is not installed (scripts/install-system.sh)"
)
@pytest.mark.parametrize("stressor", list(STRESSORS))
def test_stress_ng_stressor_verifies(mounted, stressor):
    command = ["stress-ng", *STRESSORS[stressor].split(), "--verify", "--metrics-brief",
               "--temp-path", str(mounted.path), "--timeout", f"{STRESS_SECONDS}s"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:] + mounted.log_tail()
    assert "successful run completed" in output, output[-3000:]
    bogo_ops = dict(_BOGO_OPS.findall(output))
    assert int(bogo_ops.get(stressor, 0)) > 0, f"{stressor} did no operation:\n{output[-3000:]}"
    assert mounted.alive(), mounted.log_tail()
    assert os.listdir(mounted.path) == [], "stress-ng left files behind"


# ----------------------------------------------------------------------------- CPython's tests

CPYTHON_MODULES = [
    "test_os", "test_shutil", "test_posix", "test_tempfile", "test_fileio",
    "test_pathlib", "test_glob", "test_fcntl", "test_mmap",
]  # fmt: skip
# Test cases left out for time, not because they fail (they pass on the mount, run alone): with
# entry/attribute timeouts 0 every path component of every call is a lookup at meta, and these
# walk or glob a 100-level tree (or walk a tree many times). Seconds each on this machine (2
# cores, shared): os walk/glob *_many_open_files 95-125 (5 cases), os fwalk test_fd_leak 10-12 (2).
# Also the tar-family unpack tests but one (gztar): the same extraction, another compressor, 5 s
# each.
CPYTHON_SLOW = [
    "*_many_open_files",
    "*test_fd_leak",
    "*test_unpack_archive_tar",
    "*test_unpack_archive_bztar",
    "*test_unpack_archive_xztar",
]


def _cpython_tests_available() -> bool:
    return (
        subprocess.run([sys.executable, "-c", "import test.libregrtest"], capture_output=True).returncode == 0
    )


@pytest.mark.skipif(not _cpython_tests_available(), reason="no CPython test package (test.libregrtest)")
def test_cpython_test_modules_pass_on_the_mount(mounted):
    """``python -m test --tempdir=MOUNT`` (working directory and ``TMPDIR`` on the mount too), two
    worker processes: 105 s here, against about 150 s for the modules one after the other."""
    ignores = [arg for pattern in CPYTHON_SLOW for arg in ("-i", pattern)]
    command = [sys.executable, "-m", "test", f"--tempdir={mounted.path}", "-j2", "--timeout=300",
               *ignores, *CPYTHON_MODULES]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(mounted.path)}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=mounted.path, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Result: SUCCESS" in output, output[-8000:]
    assert mounted.alive(), mounted.log_tail()


# ----------------------------------------------------------------------------- two clients


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as stream:
        stream.write(data)


def _read(path: str) -> bytes:
    with open(path, "rb") as stream:
        return stream.read()


def test_two_mounts_see_each_others_writes_after_close(mounted):
    other = mounted.second_mount()
    first, second = os.path.join(mounted.path, "shared.bin"), os.path.join(other.path, "shared.bin")
    data = os.urandom(300_000)
    _write(first, data)
    assert _read(second) == data
    assert os.stat(second).st_size == len(data)

    # Overwrite a middle range and extend, through the second mount.
    with open(second, "r+b") as stream:
        stream.seek(100_000)
        stream.write(b"x" * 1000)
        stream.seek(0, os.SEEK_END)
        stream.write(b"tail")
    expected = data[:100_000] + b"x" * 1000 + data[101_000:] + b"tail"
    assert _read(first) == expected
    assert os.stat(first).st_size == len(expected)

    # Shrink through the first, then a rename and a new directory through the second.
    os.truncate(first, 5)
    assert _read(second) == data[:5]
    os.mkdir(os.path.join(other.path, "dir"))
    os.rename(second, os.path.join(other.path, "dir", "moved.bin"))
    assert sorted(os.listdir(mounted.path)) == ["dir"]
    assert _read(os.path.join(mounted.path, "dir", "moved.bin")) == data[:5]


def test_mount_and_library_see_each_others_writes(mounted):
    connect = pytest.importorskip("client.connect").connect
    with connect(cluster_config=str(mounted.config_file)) as fs:
        data = os.urandom(200_000)
        _write(os.path.join(mounted.path, "from-mount.bin"), data)
        with fs.open("/from-mount.bin", "rb") as stream:
            assert stream.read() == data
        with fs.open("/from-library.bin", "wb") as stream:
            stream.write(data[::-1])
        assert _read(os.path.join(mounted.path, "from-library.bin")) == data[::-1]
        with fs.open("/from-mount.bin", "r+b") as stream:
            stream.truncate(1000)
        assert _read(os.path.join(mounted.path, "from-mount.bin")) == data[:1000]
