"""symlink: a new symbolic link ``at`` holding ``target`` (any path; it need not exist)."""

from __future__ import annotations

from meta.components.inodes import check_can_create, link_new, new_inode
from meta.components.names import check_path
from meta.components.resolve import resolve_parent
from meta.ops.context import OpContext
from threefs.errors import Code, ThreeFSError
from threefs.wire.meta import InodeType, SymlinkRequest, SymlinkResponse

__all__ = ["symlink"]


def symlink(ctx: OpContext, request: SymlinkRequest) -> SymlinkResponse:
    """Create the link (mode 0777, length = target bytes). Errors: META_NOT_FOUND for an empty
    target (as Linux), META_PATH_TOO_LONG / META_INVALID_NAME (NUL) for the target, META_EXISTS,
    META_PERMISSION_DENIED, resolution errors."""
    if not request.target:
        raise ThreeFSError(Code.META_NOT_FOUND, "empty symlink target")
    target = check_path(request.target)
    resolved = resolve_parent(ctx, request.at, dot_code=Code.META_EXISTS)
    check_can_create(ctx, resolved)
    inode = new_inode(
        ctx, resolved.parent, InodeType.SYMLINK, 0o777, resolved.name, target=target, length=len(target)
    )
    link_new(ctx, resolved.parent, resolved.name, inode)
    return SymlinkResponse(inode=inode)
