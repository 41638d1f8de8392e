"""Names through a real mount: mkdir/rmdir, unlink, rename (with RENAME_NOREPLACE and
RENAME_EXCHANGE through renameat2), link, symlink, mknod, chmod/chown/utime, statvfs, access,
and directory listings over many readdir pages."""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import time

import pytest

pytestmark = pytest.mark.slow

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)


def renameat2(src: str, dst: str, flags: int) -> None:
    if _libc.renameat2(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), src)


def p(mounted, *names: str) -> str:
    return os.path.join(mounted.path, *names)


def write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_root_and_inode_numbers(mounted) -> None:
    st = os.stat(mounted.path)
    assert stat.S_ISDIR(st.st_mode)
    assert st.st_ino == 1
    assert os.listdir(mounted.path) == []


def test_mkdir_rmdir_unlink(mounted) -> None:
    os.makedirs(p(mounted, "a", "b", "c"), mode=0o750)
    st = os.stat(p(mounted, "a", "b"))
    assert stat.S_ISDIR(st.st_mode) and st.st_nlink == 3
    write(p(mounted, "a", "b", "c", "f"), b"x")
    with pytest.raises(OSError) as info:
        os.rmdir(p(mounted, "a", "b", "c"))
    assert info.value.errno == errno.ENOTEMPTY
    with pytest.raises(IsADirectoryError):
        os.unlink(p(mounted, "a", "b"))
    with pytest.raises(NotADirectoryError):
        os.rmdir(p(mounted, "a", "b", "c", "f"))
    with pytest.raises(FileExistsError):
        os.mkdir(p(mounted, "a"))
    os.unlink(p(mounted, "a", "b", "c", "f"))
    os.rmdir(p(mounted, "a", "b", "c"))
    assert os.listdir(p(mounted, "a", "b")) == []
    with pytest.raises(FileNotFoundError):
        os.stat(p(mounted, "a", "b", "c"))
    with pytest.raises(OSError) as info:
        os.mkdir(p(mounted, "n" * 256))
    assert info.value.errno == errno.ENAMETOOLONG


def test_rename_plain_replace_noreplace_exchange(mounted) -> None:
    write(p(mounted, "a"), b"A")
    write(p(mounted, "b"), b"B")
    os.mkdir(p(mounted, "d"))
    os.rename(p(mounted, "a"), p(mounted, "d", "a2"))
    assert read(p(mounted, "d", "a2")) == b"A"
    assert not os.path.exists(p(mounted, "a"))
    os.replace(p(mounted, "b"), p(mounted, "d", "a2"))  # replaces
    assert read(p(mounted, "d", "a2")) == b"B"
    write(p(mounted, "c"), b"C")
    with pytest.raises(FileExistsError):
        renameat2(p(mounted, "c"), p(mounted, "d", "a2"), RENAME_NOREPLACE)
    renameat2(p(mounted, "c"), p(mounted, "d", "fresh"), RENAME_NOREPLACE)
    renameat2(p(mounted, "d", "fresh"), p(mounted, "d", "a2"), RENAME_EXCHANGE)
    assert read(p(mounted, "d", "a2")) == b"C"
    assert read(p(mounted, "d", "fresh")) == b"B"
    with pytest.raises(FileNotFoundError):
        renameat2(p(mounted, "d", "fresh"), p(mounted, "nothing"), RENAME_EXCHANGE)
    os.mkdir(p(mounted, "d", "sub"))
    with pytest.raises(OSError) as info:
        os.rename(p(mounted, "d"), p(mounted, "d", "sub", "inside"))
    assert info.value.errno == errno.EINVAL


def test_hard_link_and_symlink(mounted) -> None:
    write(p(mounted, "f"), b"data")
    os.link(p(mounted, "f"), p(mounted, "g"))
    assert os.stat(p(mounted, "f")).st_nlink == 2
    assert os.stat(p(mounted, "f")).st_ino == os.stat(p(mounted, "g")).st_ino
    os.unlink(p(mounted, "f"))
    assert read(p(mounted, "g")) == b"data"
    assert os.stat(p(mounted, "g")).st_nlink == 1
    os.symlink("g", p(mounted, "s"))
    assert os.readlink(p(mounted, "s")) == "g"
    assert read(p(mounted, "s")) == b"data"
    st = os.lstat(p(mounted, "s"))
    assert stat.S_ISLNK(st.st_mode) and st.st_size == 1
    os.symlink("/nowhere/at/all", p(mounted, "dangling"))
    with pytest.raises(FileNotFoundError):
        os.stat(p(mounted, "dangling"))
    with pytest.raises(OSError) as info:
        os.readlink(p(mounted, "g"))
    assert info.value.errno == errno.EINVAL
    os.mkdir(p(mounted, "dir"))
    with pytest.raises(PermissionError):
        os.link(p(mounted, "dir"), p(mounted, "dirlink"))


def test_mknod_fifo_socket_device(mounted) -> None:
    os.mkfifo(p(mounted, "fifo"), 0o640)
    assert stat.S_ISFIFO(os.stat(p(mounted, "fifo")).st_mode)
    assert stat.S_IMODE(os.stat(p(mounted, "fifo")).st_mode) == 0o640
    os.mknod(p(mounted, "sock"), stat.S_IFSOCK | 0o600)
    assert stat.S_ISSOCK(os.stat(p(mounted, "sock")).st_mode)
    os.mknod(p(mounted, "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    st = os.stat(p(mounted, "null"))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    os.mknod(p(mounted, "blk"), stat.S_IFBLK | 0o600, os.makedev(7, 0))
    assert stat.S_ISBLK(os.stat(p(mounted, "blk")).st_mode)
    os.mknod(p(mounted, "reg"), stat.S_IFREG | 0o600)
    assert stat.S_ISREG(os.stat(p(mounted, "reg")).st_mode)
    with pytest.raises(PermissionError):  # mounted nodev (libfuse's default): nodes do not open
        open(p(mounted, "null"), "wb")


def test_chmod_chown_utime(mounted) -> None:
    path = p(mounted, "f")
    write(path, b"x")
    os.chmod(path, 0o4711)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o4711
    os.chown(path, 1234, 5678)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert not st.st_mode & stat.S_ISUID  # cleared by an owner change
    os.utime(path, ns=(1_000_000_000_123, 2_000_000_000_456))
    st = os.stat(path)
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_000_123, 2_000_000_000_456)
    before = time.time()
    os.utime(path)  # UTIME_NOW
    assert os.stat(path).st_mtime >= before - 1
    os.symlink("f", p(mounted, "link"))
    os.chown(p(mounted, "link"), 42, 42, follow_symlinks=False)
    assert os.lstat(p(mounted, "link")).st_uid == 42
    assert os.stat(path).st_uid == 1234


def test_statvfs_and_access(mounted) -> None:
    sv = os.statvfs(mounted.path)
    assert sv.f_bsize > 0 and sv.f_blocks > 0 and sv.f_namemax == 255
    assert sv.f_bavail <= sv.f_blocks
    write(p(mounted, "f"), b"x")
    os.chmod(p(mounted, "f"), 0o644)
    assert os.access(p(mounted, "f"), os.R_OK | os.W_OK)
    assert not os.access(p(mounted, "f"), os.X_OK)  # root too: no x bit anywhere
    assert os.access(p(mounted, "f"), os.F_OK)
    assert not os.access(p(mounted, "missing"), os.F_OK)


def test_listdir_many_entries_across_pages(mounted) -> None:
    directory = p(mounted, "many")
    os.mkdir(directory)
    names = {f"entry-{i:05d}-{'x' * (i % 50)}" for i in range(1300)}
    for name in names:
        os.mknod(os.path.join(directory, name), stat.S_IFREG | 0o644)
    os.mkdir(os.path.join(directory, "subdir"))
    listed = os.listdir(directory)
    assert len(listed) == len(set(listed)) == len(names) + 1
    assert set(listed) == names | {"subdir"}
    with os.scandir(directory) as entries:
        kinds = {entry.name: entry.is_dir(follow_symlinks=False) for entry in entries}
    assert kinds["subdir"] is True and sum(kinds.values()) == 1
    # the same open directory read twice (rewinddir), and entries removed while listing
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        first = os.listdir(fd)
        second = os.listdir(fd)
        assert sorted(first) == sorted(second)
    finally:
        os.close(fd)
    with os.scandir(directory) as entries:
        seen = []
        for count, entry in enumerate(entries):
            if count == 10:
                for victim in sorted(names)[1100:1200]:
                    os.unlink(os.path.join(directory, victim))
            seen.append(entry.name)
    assert len(seen) == len(set(seen))  # nothing returned twice
    assert set(sorted(names)[:1100]) <= set(seen)


def test_touch_never_moves_mtime_back(mounted) -> None:
    """The kernel renders UTIME_NOW with its coarse clock (up to a tick behind the precise
    one), so meta must stamp times with that clock too, or a ``touch`` right after a create
    sets an mtime older than the create's (CPython's test_pathlib ``test_touch_common``)."""
    for i in range(200):
        path = p(mounted, f"t{i}")
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
        created = os.stat(path).st_mtime_ns
        os.utime(path)  # UTIME_NOW
        touched = os.stat(path).st_mtime_ns
        assert touched >= created, f"touch {i} moved mtime back by {created - touched} ns"
