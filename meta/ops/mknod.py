"""mknod: create a regular file, fifo, socket or device node (directories and symlinks have
their own operations). Device nodes need admin root (CAP_MKNOD); a regular file takes the
directory's layout (META_BAD_LAYOUT when there is none)."""

from __future__ import annotations

from meta.components import permissions
from meta.components.inodes import check_can_create, link_new, new_inode
from meta.components.resolve import resolve_parent
from meta.ops.context import OpContext
from threefs.errors import Code, ThreeFSError
from threefs.wire.meta import InodeType, MknodRequest, MknodResponse

__all__ = ["mknod"]

_DEVICES = (InodeType.CHAR_DEVICE, InodeType.BLOCK_DEVICE)


def mknod(ctx: OpContext, request: MknodRequest) -> MknodResponse:
    """Create ``request.at`` as a ``request.type`` node. Errors: INVALID_ARG for a directory or
    symlink type, META_NOT_PERMITTED for a device node without admin root, META_EXISTS,
    META_PERMISSION_DENIED (no write/search on the directory), resolution errors."""
    if request.type in (InodeType.DIRECTORY, InodeType.SYMLINK):
        raise ThreeFSError(Code.INVALID_ARG, f"mknod cannot create a {request.type.name.lower()}")
    if request.type in _DEVICES and not permissions.is_root(ctx.caller):
        raise ThreeFSError(Code.META_NOT_PERMITTED, "creating a device node needs admin root")
    resolved = resolve_parent(ctx, request.at, dot_code=Code.META_EXISTS)
    check_can_create(ctx, resolved)
    rdev = request.rdev if request.type in _DEVICES else 0
    inode = new_inode(ctx, resolved.parent, request.type, request.mode, resolved.name, rdev=rdev)
    link_new(ctx, resolved.parent, resolved.name, inode)
    return MknodResponse(inode=inode)
