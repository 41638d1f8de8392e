"""Inodes as Python sees files: ``StatResult`` (an ``os.stat_result``) and ``DirEntry`` (like
``os.DirEntry``), with file-type bits from ``InodeType``."""

from __future__ import annotations

import os
import stat as st
from dataclasses import dataclass

from threefs.wire.meta import Inode, InodeType

__all__ = ["DirEntry", "StatResult", "file_type_bits", "stat_result"]

_TYPE_BITS = {
    InodeType.FILE: st.S_IFREG,
    InodeType.DIRECTORY: st.S_IFDIR,
    InodeType.SYMLINK: st.S_IFLNK,
    InodeType.FIFO: st.S_IFIFO,
    InodeType.SOCKET: st.S_IFSOCK,
    InodeType.CHAR_DEVICE: st.S_IFCHR,
    InodeType.BLOCK_DEVICE: st.S_IFBLK,
}
BLOCK_SIZE = 512  # st_blocks counts 512-byte units, as on Linux

StatResult = os.stat_result


def file_type_bits(inode_type: InodeType) -> int:
    return _TYPE_BITS[InodeType(inode_type)]


def stat_result(inode: Inode, *, blksize: int = 1 << 20) -> os.stat_result:
    """``inode`` as an ``os.stat_result``: ``st_mode`` has the type bits, ``st_ino`` the inode
    id, ``st_dev`` 0; times in seconds (float) and nanoseconds (``st_mtime_ns``, ...);
    ``st_blksize`` is the file's chunk size (the best I/O size), ``st_blocks`` the 512-byte
    blocks its length covers (storage does not report allocation)."""
    if inode.layout is not None:
        blksize = inode.layout.chunk_size
    return os.stat_result(
        (
            file_type_bits(inode.type) | inode.mode,
            inode.id,
            0,
            inode.nlink,
            inode.uid,
            inode.gid,
            inode.length,
            inode.atime_ns // 1_000_000_000,
            inode.mtime_ns // 1_000_000_000,
            inode.ctime_ns // 1_000_000_000,
            inode.atime_ns / 1e9,
            inode.mtime_ns / 1e9,
            inode.ctime_ns / 1e9,
            inode.atime_ns,
            inode.mtime_ns,
            inode.ctime_ns,
            blksize,
            -(-inode.length // BLOCK_SIZE),
            inode.rdev,
        )
    )


@dataclass(frozen=True)
class DirEntry:
    """One entry of ``scandir``: ``name``, ``path`` (the directory joined with the name), the
    inode number (``inode()``) and type, and the inode itself (``attrs``; attributes come with the listing, so
    ``stat()`` needs no call; a symlink's ``stat()`` is its own, not its target's)."""

    name: str
    path: str
    inode_type: InodeType
    inode_id: int
    attrs: Inode | None

    def inode(self) -> int:
        return self.inode_id

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self.inode_type == InodeType.DIRECTORY

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return self.inode_type == InodeType.FILE

    def is_symlink(self) -> bool:
        return self.inode_type == InodeType.SYMLINK

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        if self.attrs is None:
            raise FileNotFoundError(2, "entry without attributes", self.path)
        return stat_result(self.attrs)

    def __fspath__(self) -> str:
        return self.path
