"""open and create (O_CREAT, O_EXCL, O_TRUNC, O_APPEND for the client).

- Without CREATE the object must exist; with CREATE a missing last component is created as a
  regular file (mode ``request.mode``, layout from the directory), a dangling final symlink
  creates its target (as POSIX), and with EXCLUSIVE an existing one (even a symlink) is
  META_EXISTS.
- Permission on an existing object: READ needs r, WRITE/TRUNCATE/APPEND need w; a file the
  call created is opened whatever its mode. A directory opened with WRITE or TRUNCATE or with
  CREATE is META_IS_DIRECTORY; a final symlink with ``follow`` False is META_LOOP.
- TRUNCATE sets a regular file's length to 0 and bumps ``truncate_version`` (the chunks were
  removed on storage by the service before the op). WRITE on a regular file records a
  ``FileSession`` with a fresh random id, returned to the client.
"""

from __future__ import annotations

import os

import msgspec

from meta.components import permissions
from meta.components.inodes import check_can_create, link_new, new_inode
from meta.components.resolve import resolve, resolve_parent
from meta.ops.context import OpContext
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.wire.meta import (
    MAX_SYMLINK_FOLLOWS,
    FileSession,
    Inode,
    InodeType,
    OpenFlags,
    OpenRequest,
    OpenResponse,
    PathAt,
)

__all__ = ["check_open_of", "open_file"]

_ALL_FLAGS = 0
for _flag in OpenFlags:
    _ALL_FLAGS |= _flag
del _flag

_WRITING = OpenFlags.WRITE | OpenFlags.TRUNCATE | OpenFlags.APPEND


def _open_or_create(ctx: OpContext, request: OpenRequest) -> tuple[Inode, bool]:
    """The inode to open and whether this call created it (CREATE given)."""
    at = request.at
    for _ in range(MAX_SYMLINK_FOLLOWS + 1):
        resolved = resolve_parent(ctx, at, dot_code=Code.META_IS_DIRECTORY)
        if resolved.entry is None:
            if resolved.trailing_slash:
                raise ThreeFSError(Code.META_IS_DIRECTORY, f"cannot create {at.path!r}: it ends with '/'")
            check_can_create(ctx, resolved)
            inode = new_inode(ctx, resolved.parent, InodeType.FILE, request.mode, resolved.name)
            link_new(ctx, resolved.parent, resolved.name, inode)
            return inode, True
        if request.flags & OpenFlags.EXCLUSIVE:
            message = f"{resolved.name!r} exists in directory {resolved.parent.id}"
            raise ThreeFSError(Code.META_EXISTS, message)
        inode = resolved.inode
        if inode is None:
            raise ThreeFSError(Code.META_NOT_FOUND, f"entry {resolved.name!r} names a missing inode")
        if inode.type != InodeType.SYMLINK or not request.follow:
            return inode, False
        at = PathAt(resolved.parent.id, inode.target)
    message = f"more than {MAX_SYMLINK_FOLLOWS} symlinks opening {request.at.path!r}"
    raise ThreeFSError(Code.META_LOOP, message)


def _check_flags(flags: int) -> None:
    if flags & ~_ALL_FLAGS:
        raise ThreeFSError(Code.INVALID_ARG, f"unknown open flags {flags & ~_ALL_FLAGS:#x}")


def _wanted(flags: int) -> int:
    """The permission bits an open with ``flags`` needs on an existing object."""
    return (permissions.R if flags & OpenFlags.READ else 0) | (permissions.W if flags & _WRITING else 0)


def check_open_of(ctx: OpContext, request: OpenRequest, inode: Inode) -> None:
    """Raise what ``open_file`` raises before it opens ``inode``, an existing regular file that
    ``request.at`` names: INVALID_ARG (unknown flag bits), META_EXISTS (an exclusive create),
    META_PERMISSION_DENIED. The service runs it before cutting the chunks of a TRUNCATE, so an
    open that is refused cuts nothing."""
    _check_flags(request.flags)
    if request.flags & OpenFlags.CREATE and request.flags & OpenFlags.EXCLUSIVE:
        raise ThreeFSError(Code.META_EXISTS, f"inode {inode.id} exists (exclusive create)")
    permissions.check(inode, ctx.caller, _wanted(request.flags), f"inode {inode.id}")


def open_file(ctx: OpContext, request: OpenRequest) -> OpenResponse:
    """Open (and with CREATE create) ``request.at``; see the module docstring. Errors:
    INVALID_ARG (unknown flag bits), META_EXISTS, META_NOT_FOUND, META_IS_DIRECTORY, META_LOOP,
    META_PERMISSION_DENIED, META_BAD_LAYOUT (create where no layout is set), name/path errors."""
    flags = request.flags
    _check_flags(flags)
    if flags & OpenFlags.CREATE:
        inode, created = _open_or_create(ctx, request)
    else:
        inode, created = resolve(ctx, request.at, follow=request.follow), False
    if inode.type == InodeType.SYMLINK:
        raise ThreeFSError(Code.META_LOOP, f"inode {inode.id} is a symlink (not followed)")
    if inode.type == InodeType.DIRECTORY and flags & (_WRITING | OpenFlags.CREATE):
        raise ThreeFSError(Code.META_IS_DIRECTORY, f"inode {inode.id} is a directory")
    if not created:
        permissions.check(inode, ctx.caller, _wanted(flags), f"inode {inode.id}")
    is_file = inode.type == InodeType.FILE
    if is_file and flags & OpenFlags.TRUNCATE and not created:
        inode = msgspec.structs.replace(
            inode,
            length=0,
            truncate_version=inode.truncate_version + 1,
            mtime_ns=ctx.now_ns,
            ctime_ns=ctx.now_ns,
        )
        records.save_inode(ctx.txn, inode)
    session_id = b""
    if is_file and flags & OpenFlags.WRITE:
        session_id = os.urandom(16)
        records.save_session(
            ctx.txn,
            FileSession(
                session_id=session_id,
                inode=inode.id,
                client_id=request.request.client_id,
                client_node=request.client_node,
                created_ns=ctx.now_ns,
            ),
        )
    return OpenResponse(inode=inode, created=created, session_id=session_id)
