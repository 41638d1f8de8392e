"""readlink: the target of the symlink ``at`` names (the last component is not followed)."""

from __future__ import annotations

from meta.components.resolve import resolve
from meta.ops.context import OpContext
from threefs.errors import Code, ThreeFSError
from threefs.wire.meta import InodeType, ReadlinkRequest, ReadlinkResponse

__all__ = ["readlink"]


def readlink(ctx: OpContext, request: ReadlinkRequest) -> ReadlinkResponse:
    """The target; INVALID_ARG (EINVAL) when ``at`` is not a symlink, resolution errors."""
    inode = resolve(ctx, request.at, follow=False)
    if inode.type != InodeType.SYMLINK:
        raise ThreeFSError(Code.INVALID_ARG, f"inode {inode.id} is not a symlink")
    return ReadlinkResponse(target=inode.target)
