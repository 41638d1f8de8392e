"""hard link: a new name for an existing non-directory (``old`` is not followed, as linkat)."""

from __future__ import annotations

import msgspec

from meta.components.inodes import check_can_create, touch_dir
from meta.components.resolve import resolve, resolve_parent
from meta.ops.context import OpContext
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.wire.meta import MAX_LINKS, DirEntry, HardLinkRequest, HardLinkResponse, InodeType

__all__ = ["hard_link"]


def hard_link(ctx: OpContext, request: HardLinkRequest) -> HardLinkResponse:
    """Link ``request.old`` as ``request.new``: nlink + 1 and ctime now on the inode, the new
    directory's mtime/ctime now. Errors: META_NOT_PERMITTED (a directory), META_NOT_FOUND (an
    unlinked inode), META_TOO_MANY_LINKS (``MAX_LINKS``), META_EXISTS, META_PERMISSION_DENIED,
    resolution errors."""
    inode = resolve(ctx, request.old, follow=False)
    if inode.type == InodeType.DIRECTORY:
        raise ThreeFSError(Code.META_NOT_PERMITTED, f"inode {inode.id} is a directory (no hard links)")
    if inode.nlink == 0:
        raise ThreeFSError(Code.META_NOT_FOUND, f"inode {inode.id} has no links left")
    if inode.nlink >= MAX_LINKS:
        raise ThreeFSError(Code.META_TOO_MANY_LINKS, f"inode {inode.id} has {inode.nlink} links")
    resolved = resolve_parent(ctx, request.new, dot_code=Code.META_EXISTS)
    check_can_create(ctx, resolved)
    inode = msgspec.structs.replace(inode, nlink=inode.nlink + 1, ctime_ns=ctx.now_ns)
    records.save_inode(ctx.txn, inode)
    records.save_entry(ctx.txn, resolved.parent.id, resolved.name, DirEntry(inode.id, inode.type))
    touch_dir(ctx, resolved.parent)
    return HardLinkResponse(inode=inode)
