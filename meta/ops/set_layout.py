"""set-layout: a directory's default layout for the files created in it (and copied by the
subdirectories made afterwards; existing files and subdirectories keep theirs)."""

from __future__ import annotations

import msgspec

from meta.components import permissions
from meta.components.resolve import resolve
from meta.ops.context import OpContext
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.wire.meta import InodeType, SetLayoutRequest, SetLayoutResponse

__all__ = ["set_layout"]


def set_layout(ctx: OpContext, request: SetLayoutRequest) -> SetLayoutResponse:
    """Set ``dir_layout`` of directory ``request.at`` (followed) and its ctime. The layout's
    ``seed`` is ignored (each file gets its own) and stored as 0. That the chain table exists
    at mgmtd is checked by the service before the op. Errors: META_NOT_DIRECTORY,
    META_NOT_PERMITTED (neither the owner nor admin root), resolution errors."""
    directory = resolve(ctx, request.at, follow=True)
    if directory.type != InodeType.DIRECTORY:
        raise ThreeFSError(Code.META_NOT_DIRECTORY, f"inode {directory.id} is not a directory")
    permissions.check_owner(directory, ctx.caller)
    layout = msgspec.structs.replace(request.layout, seed=0)
    directory = msgspec.structs.replace(directory, dir_layout=layout, ctime_ns=ctx.now_ns)
    records.save_inode(ctx.txn, directory)
    return SetLayoutResponse(inode=directory)
