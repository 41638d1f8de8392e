"""Building new inodes and linking them into a directory: ownership, setgid, layout, times.

Rules (docs/meta.md "Permissions" and "Layouts"):

- a new inode is owned by the caller's uid; its gid is the directory's gid when the directory
  has the setgid bit (and a new subdirectory inherits the setgid bit), else the caller's gid;
  a new non-directory asking for setgid keeps it only when the caller is in that group (or is
  admin root), as Linux does;
- a new file takes the directory's ``dir_layout`` (which mkdir copies down) with ``seed`` set
  to the new inode's id, so its chunk placement is reproducible; no layout is META_BAD_LAYOUT;
- creating an entry needs write and search permission on the directory, which must still be
  linked (nlink > 0); the directory's mtime/ctime become the operation's time.
"""

from __future__ import annotations

import msgspec

from meta.components import permissions
from meta.components.resolve import Resolved
from meta.ops.context import OpContext
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.layout import Layout
from threefs.wire.meta import DirEntry, Inode, InodeType

__all__ = [
    "S_ISGID",
    "S_ISUID",
    "S_ISVTX",
    "check_can_create",
    "file_layout",
    "link_new",
    "new_inode",
    "touch_dir",
]

S_ISUID = 0o4000
S_ISGID = 0o2000
S_ISVTX = 0o1000


def check_can_create(ctx: OpContext, resolved: Resolved) -> None:
    """The entry ``resolved.name`` may be created in ``resolved.parent``: the directory is still
    linked (META_NOT_FOUND), the name is free (META_EXISTS, which wins over a missing write
    permission, as on Linux) and the caller may write and search the directory
    (META_PERMISSION_DENIED)."""
    parent = resolved.parent
    if parent.nlink == 0:
        raise ThreeFSError(Code.META_NOT_FOUND, f"directory {parent.id} was removed")
    if resolved.entry is not None:
        raise ThreeFSError(Code.META_EXISTS, f"{resolved.name!r} exists in directory {parent.id}")
    permissions.check(parent, ctx.caller, permissions.W | permissions.X, f"directory {parent.id}")


def file_layout(directory: Inode, inode_id: int) -> Layout:
    """The layout of a new file with id ``inode_id`` in ``directory``: the directory's default
    with ``seed = inode_id`` (META_BAD_LAYOUT when the directory has none)."""
    if directory.dir_layout is None:
        raise ThreeFSError(
            Code.META_BAD_LAYOUT, f"directory {directory.id} has no default layout (threefs admin set-layout)"
        )
    return msgspec.structs.replace(directory.dir_layout, seed=inode_id)


def new_inode(
    ctx: OpContext, directory: Inode, inode_type: InodeType, mode: int, name: bytes, **fields: object
) -> Inode:
    """A fresh inode (not saved) of ``inode_type`` created by the caller in ``directory``, with
    a new id, the owner/setgid rules above, times ``ctx.now_ns``, nlink 2 for a directory (which
    also gets ``parent``/``name`` and a copy of the directory's default layout), 1 otherwise;
    a file gets its layout. ``fields`` set the rest (``target``, ``rdev``, ``length``)."""
    caller = ctx.caller
    mode &= 0o7777
    if directory.mode & S_ISGID:
        gid = directory.gid
        if inode_type == InodeType.DIRECTORY:
            mode |= S_ISGID
    else:
        gid = caller.gid
    if (
        inode_type != InodeType.DIRECTORY
        and mode & S_ISGID
        and not permissions.in_group(caller, gid)
        and not permissions.is_root(caller)
    ):
        mode &= ~S_ISGID
    inode_id = ctx.new_inode_id()
    extra: dict[str, object] = dict(fields)
    if inode_type == InodeType.DIRECTORY:
        extra.update(parent=directory.id, name=name, dir_layout=directory.dir_layout)
    elif inode_type == InodeType.FILE:
        extra["layout"] = file_layout(directory, inode_id)
    now = ctx.now_ns
    return Inode(
        id=inode_id,
        type=inode_type,
        mode=mode,
        uid=caller.uid,
        gid=gid,
        nlink=2 if inode_type == InodeType.DIRECTORY else 1,
        atime_ns=now,
        mtime_ns=now,
        ctime_ns=now,
        **extra,  # type: ignore[arg-type]
    )


def touch_dir(ctx: OpContext, directory: Inode, nlink_delta: int = 0) -> Inode:
    """Save ``directory`` with mtime/ctime now and nlink moved by ``nlink_delta``; returns it."""
    updated = msgspec.structs.replace(
        directory, mtime_ns=ctx.now_ns, ctime_ns=ctx.now_ns, nlink=directory.nlink + nlink_delta
    )
    records.save_inode(ctx.txn, updated)
    return updated


def link_new(ctx: OpContext, directory: Inode, name: bytes, inode: Inode) -> Inode:
    """Save new ``inode`` and its entry ``name`` in ``directory`` and touch the directory (one
    more link for a subdirectory's ``..``); returns the updated directory."""
    records.save_inode(ctx.txn, inode)
    records.save_entry(ctx.txn, directory.id, name, DirEntry(inode.id, inode.type))
    return touch_dir(ctx, directory, 1 if inode.type == InodeType.DIRECTORY else 0)
