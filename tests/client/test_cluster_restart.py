"""A whole-cluster restart keeps every file: files written through the library on a real local
cluster (`threefs up`), the cluster stopped (`threefs down`) and started again on the same data
directory, then every file, directory, link and attribute checked."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import threefs

pytestmark = pytest.mark.slow

CHUNK = 64 << 10
SHAPE = ["--storage-nodes", "3", "--targets-per-node", "1", "--replicas", "3", "--chunk-size", "64K"]

# path -> (content, mode): files of every size class, in nested directories.
FILES = {
    "/empty": (b"", 0o644),
    "/small.txt": (b"hello, threefs\n", 0o600),
    "/one-chunk.bin": (os.urandom(CHUNK), 0o640),
    "/data/a/b/several-chunks.bin": (os.urandom(3 * CHUNK + 1234), 0o644),
    "/data/a/script.sh": (b"#!/bin/sh\necho hi\n" * 300, 0o755),
    "/data/c/odd.bin": (os.urandom(CHUNK + 1), 0o444),
}
DIRECTORIES = {
    "/data": 0o755,
    "/data/a": 0o750,
    "/data/a/b": 0o755,
    "/data/c": 0o700,
    "/data/empty-dir": 0o711,
}
SYMLINKS = {"/data/link-to-several": "a/b/several-chunks.bin", "/dangling": "/nowhere/at/all"}
HARD_LINKS = {"/data/c/small-again.txt": "/small.txt"}


def threefs_command(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def snapshot(fs) -> dict[str, tuple]:  # type: ignore[no-untyped-def]
    """Every name under ``/`` with what must survive: type and permission bits, size, link
    count, inode, owner, mtime; file contents, symlink targets."""
    seen: dict[str, tuple] = {}
    for top, dirs, files in fs.walk("/"):
        for name in dirs + files:
            path = f"{top.rstrip('/')}/{name}"
            st = fs.lstat(path)
            attributes = (
                st.st_mode,
                st.st_size,
                st.st_nlink,
                st.st_ino,
                st.st_uid,
                st.st_gid,
                st.st_mtime_ns,
            )
            if stat.S_ISLNK(st.st_mode):
                seen[path] = (*attributes, fs.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                seen[path] = (*attributes, fs.read_bytes(path))
            else:
                seen[path] = attributes
    return seen


def populate(fs) -> None:  # type: ignore[no-untyped-def]
    for path in DIRECTORIES:
        fs.makedirs(path, exist_ok=True)
    for path, (content, mode) in FILES.items():
        fs.write_bytes(path, content)
        fs.chmod(path, mode)
    for path, mode in DIRECTORIES.items():
        fs.chmod(path, mode)
    for path, target in SYMLINKS.items():
        fs.symlink(target, path)
    for path, existing in HARD_LINKS.items():
        fs.link(existing, path)


def check_expected(seen: dict[str, tuple]) -> None:
    """What was written is what the snapshot shows (so comparing snapshots means something)."""
    for path, (content, mode) in FILES.items():
        st_mode, size, nlink, *_, data = seen[path]
        assert stat.S_ISREG(st_mode) and stat.S_IMODE(st_mode) == mode, path
        assert (size, data) == (len(content), content), path
        assert nlink == (2 if path in HARD_LINKS.values() else 1), path
    for path, mode in DIRECTORIES.items():
        assert stat.S_ISDIR(seen[path][0]) and stat.S_IMODE(seen[path][0]) == mode, path
    for path, target in SYMLINKS.items():
        assert stat.S_ISLNK(seen[path][0]) and seen[path][-1] == target, path
    for path, existing in HARD_LINKS.items():
        assert seen[path][3] == seen[existing][3], path  # the same inode
        assert seen[path][2] == 2 and seen[path][-1] == seen[existing][-1]


def test_a_whole_cluster_restart_keeps_every_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "cluster"
    config = data_dir / "cluster.toml"
    try:
        result = threefs_command("up", "--data-dir", str(data_dir), *SHAPE)
        assert result.returncode == 0, result.stderr
        with threefs.connect(config) as fs:
            populate(fs)
            before = snapshot(fs)
            with fs.open("/data/a/b/several-chunks.bin", "rb") as file:  # a followed link reads it
                assert file.read() == FILES["/data/a/b/several-chunks.bin"][0]
        check_expected(before)

        result = threefs_command("down", "--data-dir", str(data_dir))
        assert result.returncode == 0, result.stderr
        assert "stopped 5 process(es)" in result.stdout  # mgmtd, 3 storage, meta: all of them
        result = threefs_command("up", "--data-dir", str(data_dir))
        assert result.returncode == 0, result.stderr
        assert "chains SERVING: 1/1" in result.stderr

        with threefs.connect(config) as fs:
            after = snapshot(fs)
            assert fs.read_bytes("/data/link-to-several") == FILES["/data/a/b/several-chunks.bin"][0]
            with pytest.raises(FileNotFoundError):
                fs.stat("/dangling")
            # The cluster takes new files again.
            fs.write_bytes("/data/after-restart", b"still here")
            assert fs.read_bytes("/data/after-restart") == b"still here"
        assert sorted(after) == sorted(before)
        for path in before:
            assert after[path] == before[path], path
    finally:
        down = threefs_command("down", "--data-dir", str(data_dir))
    assert down.returncode == 0, down.stderr
