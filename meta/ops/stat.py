"""stat (by path), lookup (one entry of a directory, FUSE style) and batch stat (ids and paths).

Reading attributes needs search permission on every directory of a path (and nothing on the
inode itself); stat by inode id needs none (the FUSE kernel already resolved the path).
"""

from __future__ import annotations

from meta.components.names import check_name
from meta.components.resolve import lookup_child, require_directory, resolve
from meta.ops.context import OpContext
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.wire.meta import (
    BatchStatRequest,
    BatchStatResponse,
    Inode,
    LookupRequest,
    LookupResponse,
    StatRequest,
    StatResponse,
)

__all__ = ["batch_stat", "lookup", "stat"]


def stat(ctx: OpContext, request: StatRequest) -> StatResponse:
    """The inode ``request.at`` names (a final symlink followed when ``request.follow``)."""
    return StatResponse(inode=resolve(ctx, request.at, follow=request.follow))


def lookup(ctx: OpContext, request: LookupRequest) -> LookupResponse:
    """Entry ``request.name`` of directory ``request.parent`` (not followed; ``.`` and ``..``
    understood). META_NOT_FOUND, META_NOT_DIRECTORY, META_PERMISSION_DENIED (no search)."""
    name = check_name(request.name)
    directory = require_directory(ctx, request.parent)
    return LookupResponse(inode=lookup_child(ctx, directory, name))


def batch_stat(ctx: OpContext, request: BatchStatRequest) -> BatchStatResponse:
    """One answer per id then per path, in order: the inode and code 0, or None and the error
    code (a failure of one item does not fail the batch)."""
    inodes: list[Inode | None] = []
    codes: list[int] = []
    for inode_id in request.inodes:
        inode = records.load_inode(ctx.txn, inode_id)
        inodes.append(inode)
        codes.append(0 if inode is not None else int(Code.META_NOT_FOUND))
    for at in request.paths:
        try:
            inodes.append(resolve(ctx, at, follow=True))
            codes.append(0)
        except ThreeFSError as exc:
            inodes.append(None)
            codes.append(int(exc.code))
    return BatchStatResponse(inodes=inodes, codes=codes)
