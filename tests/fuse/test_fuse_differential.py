"""Differential test of the mount: hypothesis generates sequences of file operations, each one is
applied to the threefs mount and to a directory on the local disk, and every result (return value
or errno), every open file's view and the final trees (types, permission bits, sizes, link counts,
hard-link groups, contents) must be the same.

The model is deterministic: no timestamps, no inode numbers (only which paths share one), no
directory sizes (they are file-system specific); written bytes come from a seeded generator.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import shutil
import stat
import tempfile
from collections.abc import Iterator
from itertools import count

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow

# A small name space so that operations collide: existing targets, non-empty directories, a
# directory renamed into itself, paths through a regular file.
PATHS = ["a", "b", "c", "a/a", "a/b", "b/a", "b/c", "c/a", "a/a/a", "a/b/c"]
SLOTS = 2  # open file descriptors kept across operations (unlinked-while-open, renamed-while-open)
CHUNK = 64 << 10  # the test cluster's chunk size: offsets and lengths straddle chunk boundaries

_paths = st.sampled_from(PATHS)
_offsets = st.one_of(
    st.integers(0, 3000),
    st.integers(0, 3 * CHUNK),
    st.sampled_from([CHUNK - 1, CHUNK, 2 * CHUNK - 3, 2 * CHUNK]),
)
_lengths = st.one_of(st.integers(0, 600), st.integers(0, 2 * CHUNK + 7))
_seeds = st.integers(0, 255)
_slots = st.integers(0, SLOTS - 1)
_EXAMPLES = count()  # each example works in its own directory: ex0, ex1, ...

OPERATIONS = st.one_of(
    st.tuples(st.just("create"), _paths, st.booleans(), st.booleans()),
    st.tuples(st.just("write"), _paths, _offsets, _seeds, _lengths),
    st.tuples(st.just("append"), _paths, _seeds, _lengths),
    st.tuples(st.just("truncate"), _paths, st.one_of(st.integers(0, 3000), st.integers(0, 3 * CHUNK))),
    st.tuples(st.just("read"), _paths),
    st.tuples(st.just("stat"), _paths),
    st.tuples(st.just("listdir"), st.sampled_from(["", "a", "b", "c", "a/a", "a/b"])),
    st.tuples(st.just("rename"), _paths, _paths),
    st.tuples(st.just("link"), _paths, _paths),
    st.tuples(st.just("unlink"), _paths),
    st.tuples(st.just("mkdir"), _paths),
    st.tuples(st.just("rmdir"), _paths),
    st.tuples(st.just("chmod"), _paths, st.integers(0, 0o777)),
    st.tuples(st.just("open"), _slots, _paths, st.booleans()),
    st.tuples(st.just("fd_write"), _slots, _offsets, _seeds, _lengths),
    st.tuples(st.just("fd_read"), _slots),
    st.tuples(st.just("fd_truncate"), _slots, st.integers(0, 3 * CHUNK)),
    st.tuples(st.just("fd_stat"), _slots),
    st.tuples(st.just("fd_fsync"), _slots),
    st.tuples(st.just("close"), _slots),
)

# Every example starts from this tree (built by the same operations): a small file, a directory
# holding a multi-chunk file and an empty directory; ``c`` is free.
SETUP = [
    ("create", "a", True, False),
    ("write", "a", 0, 1, 1000),
    ("mkdir", "b"),
    ("create", "b/a", True, False),
    ("write", "b/a", 0, 2, CHUNK + 4321),
    ("mkdir", "b/c"),
]


def payload(seed: int, length: int) -> bytes:
    return random.Random(seed).randbytes(length)


def digest(data: bytes) -> tuple[int, str]:
    return len(data), hashlib.sha1(data).hexdigest()[:12]


def summary(st_result: os.stat_result) -> tuple:
    """What must match: type, permission bits, and size and link count of regular files
    (directory sizes and link counts are file-system specific)."""
    mode = st_result.st_mode
    regular = stat.S_ISREG(mode)
    return (
        stat.S_IFMT(mode),
        oct(stat.S_IMODE(mode)),
        st_result.st_size if regular else None,
        st_result.st_nlink if regular else None,
    )


def read_all(fd: int) -> bytes:
    parts, offset = [], 0
    while True:
        piece = os.pread(fd, 1 << 20, offset)
        if not piece:
            return b"".join(parts)
        parts.append(piece)
        offset += len(piece)


class Side:
    """One of the two file systems: a root directory and the descriptors open on it."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.fds: dict[int, int] = {}

    def path(self, relative: str) -> str:
        return os.path.join(self.root, relative)

    def apply(self, op: tuple) -> tuple:
        try:
            return ("ok", self._apply(op))
        except OSError as exc:
            return ("error", errno.errorcode.get(exc.errno, exc.errno))

    def _apply(self, op: tuple) -> object:
        kind, args = op[0], op[1:]
        if kind.startswith("fd_") or kind == "close":
            fd = self.fds.get(args[0])
            if fd is None:
                return "no descriptor"
            return self._apply_fd(kind, fd, args)
        if kind == "create":
            path, exclusive, truncate = args
            flags = os.O_WRONLY | os.O_CREAT
            flags |= (os.O_EXCL if exclusive else 0) | (os.O_TRUNC if truncate else 0)
            os.close(os.open(self.path(path), flags, 0o644))
            return None
        if kind == "write":
            path, offset, seed, length = args
            fd = os.open(self.path(path), os.O_WRONLY)
            try:
                return os.pwrite(fd, payload(seed, length), offset)
            finally:
                os.close(fd)
        if kind == "append":
            path, seed, length = args
            fd = os.open(self.path(path), os.O_WRONLY | os.O_APPEND)
            try:
                written = os.write(fd, payload(seed, length))
                return written, os.lseek(fd, 0, os.SEEK_CUR)
            finally:
                os.close(fd)
        if kind == "truncate":
            return os.truncate(self.path(args[0]), args[1])
        if kind == "read":
            fd = os.open(self.path(args[0]), os.O_RDONLY)
            try:
                return digest(read_all(fd))
            finally:
                os.close(fd)
        if kind == "stat":
            return summary(os.lstat(self.path(args[0])))
        if kind == "listdir":
            return sorted(os.listdir(self.path(args[0])))
        if kind == "rename":
            return os.rename(self.path(args[0]), self.path(args[1]))
        if kind == "link":
            return os.link(self.path(args[0]), self.path(args[1]))
        if kind == "unlink":
            return os.unlink(self.path(args[0]))
        if kind == "mkdir":
            return os.mkdir(self.path(args[0]), 0o755)
        if kind == "rmdir":
            return os.rmdir(self.path(args[0]))
        if kind == "chmod":
            return os.chmod(self.path(args[0]), args[1])
        if kind == "open":
            slot, path, create = args
            self.close_slot(slot)
            self.fds[slot] = os.open(self.path(path), os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
            return None
        raise ValueError(f"unknown operation {kind}")

    def _apply_fd(self, kind: str, fd: int, args: tuple) -> object:
        if kind == "fd_write":
            _, offset, seed, length = args
            return os.pwrite(fd, payload(seed, length), offset)
        if kind == "fd_read":
            return digest(read_all(fd))
        if kind == "fd_truncate":
            return os.ftruncate(fd, args[1])
        if kind == "fd_stat":
            return summary(os.fstat(fd))
        if kind == "fd_fsync":
            return os.fsync(fd)
        if kind == "close":
            return self.close_slot(args[0])
        raise ValueError(f"unknown operation {kind}")

    def close_slot(self, slot: int) -> None:
        fd = self.fds.pop(slot, None)
        if fd is not None:
            os.close(fd)

    def close_all(self) -> list[tuple]:
        """Close every descriptor; the results (a close may report a deferred write error)."""
        return [self.apply(("close", slot)) for slot in sorted(self.fds)]

    def tree(self) -> dict:
        """relative path -> summary (+ content digest of files), and the hard-link groups."""
        entries: dict[str, tuple] = {}
        inodes: dict[int, list[str]] = {}
        for directory, dirnames, filenames in os.walk(self.root):
            for name in sorted(dirnames + filenames):
                full = os.path.join(directory, name)
                relative = os.path.relpath(full, self.root)
                st_result = os.lstat(full)
                entry = summary(st_result)
                if stat.S_ISREG(st_result.st_mode):
                    with open(full, "rb") as file:
                        entry += (digest(file.read()),)
                    inodes.setdefault(st_result.st_ino, []).append(relative)
                entries[relative] = entry
        groups = sorted(sorted(paths) for paths in inodes.values() if len(paths) > 1)
        return {"entries": entries, "link_groups": groups}


def describe(ops: list[tuple], upto: int) -> str:
    return "\n".join(f"  {index}: {op!r}" for index, op in enumerate(ops[: upto + 1]))


@pytest.fixture
def local_root() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="threefs-differential-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(generated=st.lists(OPERATIONS, min_size=3, max_size=30))
def test_operations_match_the_local_file_system(mounted, local_root, generated):
    ops = SETUP + generated
    example = next(_EXAMPLES)
    sides = []
    for base in (str(mounted.path), local_root):
        root = os.path.join(base, f"ex{example}")
        os.mkdir(root)
        os.chmod(root, 0o755)
        sides.append(Side(root))
    fuse, local = sides
    try:
        for index, op in enumerate(ops):
            got, want = fuse.apply(op), local.apply(op)
            assert got == want, (
                f"operation {index} differs (mount {got!r}, local {want!r}):\n{describe(ops, index)}"
            )
        assert fuse.close_all() == local.close_all()
        assert fuse.tree() == local.tree(), f"final trees differ after:\n{describe(ops, len(ops))}"
    finally:
        for side in sides:
            for slot in list(side.fds):
                try:
                    side.close_slot(slot)
                except OSError:
                    pass
            _force_rmtree(side.root)


def _force_rmtree(root: str) -> None:
    """Remove a tree even where ``chmod`` took permissions away (root ignores them anyway, but
    a mount that checks them itself would refuse)."""
    for directory, dirnames, _ in os.walk(root):
        for name in dirnames:
            try:
                os.chmod(os.path.join(directory, name), 0o755)
            except OSError:
                pass
    shutil.rmtree(root, ignore_errors=True)
