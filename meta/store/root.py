"""The root directory inode (``ROOT_INODE``): created once, by whichever meta server starts first."""

from __future__ import annotations

from meta.store import records
from threefs.kv.interface import Transaction
from threefs.layout import Layout
from threefs.wire.meta import ROOT_INODE, Inode, InodeType

__all__ = ["ensure_root"]


def ensure_root(
    txn: Transaction, now_ns: int, layout: Layout | None, uid: int = 0, gid: int = 0, mode: int = 0o755
) -> Inode:
    """The root directory, created when missing (its ``parent`` is itself, nlink 2, default
    layout ``layout``); an existing root is returned unchanged, so calling this from every
    server start is safe (two servers racing conflict and one retries, then finds it)."""
    existing = records.load_inode(txn, ROOT_INODE)
    if existing is not None:
        return existing
    root = Inode(
        id=ROOT_INODE,
        type=InodeType.DIRECTORY,
        mode=mode & 0o7777,
        uid=uid,
        gid=gid,
        nlink=2,
        atime_ns=now_ns,
        mtime_ns=now_ns,
        ctime_ns=now_ns,
        dir_layout=layout,
        parent=ROOT_INODE,
    )
    records.save_inode(txn, root)
    return root
