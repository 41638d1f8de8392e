"""Paged directory listing, optionally with each entry's attributes."""

from __future__ import annotations

from meta.components import permissions
from meta.components.resolve import resolve
from meta.ops.context import OpContext
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.wire.meta import InodeType, ListEntry, ListRequest, ListResponse

__all__ = ["list_dir"]


def list_dir(ctx: OpContext, request: ListRequest) -> ListResponse:
    """Up to ``request.limit`` entries of directory ``request.at`` (followed) with names after
    ``request.after`` in byte order; ``more`` says whether entries follow the page. Needs r on
    the directory, and with ``with_attrs`` also x (reading the entries' inodes is a lookup).
    An entry whose inode is missing (fsck repairs those) comes with ``attrs`` None. Errors:
    META_NOT_DIRECTORY, META_PERMISSION_DENIED, resolution errors."""
    directory = resolve(ctx, request.at, follow=True)
    if directory.type != InodeType.DIRECTORY:
        raise ThreeFSError(Code.META_NOT_DIRECTORY, f"inode {directory.id} is not a directory")
    want = permissions.R | (permissions.X if request.with_attrs else 0)
    permissions.check(directory, ctx.caller, want, f"directory {directory.id}")
    rows = records.list_entries(ctx.txn, directory.id, after=request.after, limit=request.limit + 1)
    more = len(rows) > request.limit
    entries = []
    for name, entry in rows[: request.limit]:
        attrs = records.load_inode(ctx.txn, entry.inode) if request.with_attrs else None
        entries.append(ListEntry(name, entry.inode, entry.type, attrs))
    return ListResponse(entries=entries, more=more)
