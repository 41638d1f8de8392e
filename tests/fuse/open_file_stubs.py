"""What the ``OpenFile`` unit tests (read-ahead, write-behind) share: a regular file's inode."""

from __future__ import annotations

from threefs.layout import Layout
from threefs.wire.meta import Inode, InodeType


def file_inode(inode_id: int, length: int = 0) -> Inode:
    """A regular file of ``length`` bytes with 1 MiB chunks, owned by root, mode 0644."""
    return Inode(
        id=inode_id,
        type=InodeType.FILE,
        mode=0o644,
        uid=0,
        gid=0,
        nlink=1,
        atime_ns=0,
        mtime_ns=0,
        ctime_ns=0,
        length=length,
        layout=Layout(table_id=1, table_version=1, chunk_size=1 << 20),
    )
