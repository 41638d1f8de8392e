"""Get real path: the absolute path of what ``at`` names, with every symlink resolved.

A directory's path comes from its ``parent``/``name`` chain up to the root. A non-directory
keeps no parent, so its path is its directory's path and the name it was reached by (after the
symlinks on the way; one of several hard links is named by the one the request used).
"""

from __future__ import annotations

from meta.components.resolve import resolve, resolve_parent
from meta.ops.context import OpContext
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.wire.meta import (
    MAX_SYMLINK_FOLLOWS,
    ROOT_INODE,
    GetRealPathRequest,
    GetRealPathResponse,
    Inode,
    InodeType,
    PathAt,
)

__all__ = ["directory_path", "get_real_path"]

_MAX_DEPTH = 1 << 16


def directory_path(ctx: OpContext, directory: Inode) -> bytes:
    """``/a/b`` for directory ``directory`` (``/`` for the root), from its parent chain."""
    names: list[bytes] = []
    current = directory
    for _ in range(_MAX_DEPTH):
        if current.id == ROOT_INODE:
            return b"/" + b"/".join(reversed(names))
        names.append(current.name)
        current = records.require_inode(ctx.txn, current.parent)
    raise ThreeFSError(Code.INTERNAL, f"parent chain of directory {directory.id} does not reach the root")


def get_real_path(ctx: OpContext, request: GetRealPathRequest) -> GetRealPathResponse:
    """The real path (see the module docstring); resolution errors as ``stat``."""
    inode = resolve(ctx, request.at, follow=True)
    if inode.type == InodeType.DIRECTORY:
        return GetRealPathResponse(path=directory_path(ctx, inode))
    at = request.at
    for _ in range(MAX_SYMLINK_FOLLOWS + 1):
        resolved = resolve_parent(ctx, at)
        if resolved.inode is None:  # raced away: resolve() above saw it in this transaction
            raise ThreeFSError(Code.META_NOT_FOUND, f"{at.path!r} vanished")
        if resolved.inode.type != InodeType.SYMLINK:
            prefix = directory_path(ctx, resolved.parent).rstrip(b"/")
            return GetRealPathResponse(path=prefix + b"/" + resolved.name)
        at = PathAt(resolved.parent.id, resolved.inode.target)
    raise ThreeFSError(Code.META_LOOP, f"more than {MAX_SYMLINK_FOLLOWS} symlinks in {request.at.path!r}")
