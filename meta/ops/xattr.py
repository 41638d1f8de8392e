"""Extended attributes: get, set, list and remove, with Linux's limits and namespace rules.

Values are stored raw under ``XATT`` + inode id + name (``threefs.kv.keys.xattr_key``) and go
with the inode when it is deleted (``records.delete_inode``). Rules (docs/meta.md "Extended
attributes"):

- A name is ``namespace.rest`` with a non-empty rest, at most 255 bytes, without NUL
  (META_XATTR_NAME_INVALID, errno ERANGE); a value is at most 64 KiB (META_XATTR_TOO_LARGE,
  E2BIG); the names of one inode, each with a NUL, fit in 64 KiB (META_NO_SPACE, ENOSPC).
- ``user.*``: on regular files and directories only (elsewhere get/remove find nothing and set
  is META_NOT_PERMITTED); reading needs r, changing needs w on the inode, and on a sticky
  directory ownership (or admin root).
- ``trusted.*``: admin root only, to read, change or see in a list.
- ``security.*``: anyone reads (as Linux); only admin root changes.
- ``system.*`` and unknown namespaces: META_XATTR_UNSUPPORTED (EOPNOTSUPP): no POSIX ACLs.
- Listing needs no permission on the inode; it omits what the caller may not read
  (``trusted.*`` for a non-admin).

set and remove update ctime.
"""

from __future__ import annotations

import msgspec

from meta.components import permissions
from meta.components.resolve import resolve
from meta.ops.context import OpContext
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.kv import keys
from threefs.wire.meta import (
    MAX_XATTR_LIST_BYTES,
    MAX_XATTR_NAME_BYTES,
    MAX_XATTR_VALUE_BYTES,
    GetXattrRequest,
    GetXattrResponse,
    Inode,
    InodeType,
    ListXattrRequest,
    ListXattrResponse,
    RemoveXattrRequest,
    RemoveXattrResponse,
    SetXattrRequest,
    SetXattrResponse,
    XattrFlags,
)

__all__ = ["get_xattr", "list_xattr", "remove_xattr", "set_xattr"]

_USER, _TRUSTED, _SECURITY = b"user.", b"trusted.", b"security."
_STICKY = 0o1000
_ALL_FLAGS = XattrFlags.CREATE | XattrFlags.REPLACE


def _check_name(name: bytes) -> bytes:
    """The namespace prefix of a valid ``name`` (see the module docstring)."""
    if not name or len(name) > MAX_XATTR_NAME_BYTES or b"\x00" in name:
        raise ThreeFSError(
            Code.META_XATTR_NAME_INVALID,
            f"xattr name of {len(name)} bytes (1..{MAX_XATTR_NAME_BYTES}, no NUL)",
        )
    for prefix in (_USER, _TRUSTED, _SECURITY):
        if name.startswith(prefix):
            if len(name) == len(prefix):
                raise ThreeFSError(
                    Code.META_XATTR_NAME_INVALID, f"xattr name {name!r} has nothing after {prefix!r}"
                )
            return prefix
    raise ThreeFSError(Code.META_XATTR_UNSUPPORTED, f"xattr namespace of {name!r} is not supported")


def _user_xattrs_allowed(inode: Inode) -> bool:
    return inode.type in (InodeType.FILE, InodeType.DIRECTORY)


def _check_read(ctx: OpContext, inode: Inode, prefix: bytes) -> None:
    if prefix == _TRUSTED and not permissions.is_root(ctx.caller):
        # Linux answers ENODATA to a reader without CAP_SYS_ADMIN: the name does not exist for it
        raise ThreeFSError(Code.META_NO_XATTR, "trusted.* attributes are visible to admin root only")
    if prefix == _USER:
        permissions.check(inode, ctx.caller, permissions.R, f"inode {inode.id} (xattr)")


def _check_write(ctx: OpContext, inode: Inode, prefix: bytes) -> None:
    caller = ctx.caller
    if prefix in (_TRUSTED, _SECURITY):
        if not permissions.is_root(caller):
            raise ThreeFSError(
                Code.META_NOT_PERMITTED, f"only admin root changes {prefix.decode()}* attributes"
            )
        return
    if not _user_xattrs_allowed(inode):
        raise ThreeFSError(
            Code.META_NOT_PERMITTED, f"user.* attributes only on files and directories (inode {inode.id})"
        )
    if inode.type == InodeType.DIRECTORY and inode.mode & _STICKY:
        permissions.check_owner(inode, caller)
    permissions.check(inode, caller, permissions.W, f"inode {inode.id} (xattr)")


def _names(ctx: OpContext, inode_id: int) -> list[bytes]:
    prefix = keys.xattr_prefix(inode_id)
    rows = ctx.txn.get_range(*keys.prefix_range(prefix))
    return [key[len(prefix) :] for key, _ in rows]


def _touch(ctx: OpContext, inode: Inode) -> Inode:
    updated = msgspec.structs.replace(inode, ctime_ns=ctx.now_ns)
    records.save_inode(ctx.txn, updated)
    return updated


def get_xattr(ctx: OpContext, request: GetXattrRequest) -> GetXattrResponse:
    """The value; META_NO_XATTR when absent, permission and name errors as above."""
    prefix = _check_name(request.name)
    inode = resolve(ctx, request.at, follow=request.follow)
    _check_read(ctx, inode, prefix)
    value = ctx.txn.get(keys.xattr_key(inode.id, request.name))
    if value is None:
        raise ThreeFSError(Code.META_NO_XATTR, f"inode {inode.id} has no xattr {request.name!r}")
    return GetXattrResponse(value=value)


def set_xattr(ctx: OpContext, request: SetXattrRequest) -> SetXattrResponse:
    """Create or replace (``flags``: CREATE -> META_EXISTS if present, REPLACE -> META_NO_XATTR
    if absent; both or unknown bits: INVALID_ARG)."""
    if request.flags & ~_ALL_FLAGS or request.flags == _ALL_FLAGS:
        raise ThreeFSError(Code.INVALID_ARG, f"bad xattr flags {request.flags:#x}")
    prefix = _check_name(request.name)
    if len(request.value) > MAX_XATTR_VALUE_BYTES:
        raise ThreeFSError(
            Code.META_XATTR_TOO_LARGE,
            f"xattr value of {len(request.value)} bytes (limit {MAX_XATTR_VALUE_BYTES})",
        )
    inode = resolve(ctx, request.at, follow=request.follow)
    _check_write(ctx, inode, prefix)
    key = keys.xattr_key(inode.id, request.name)
    exists = ctx.txn.get(key) is not None
    if exists and request.flags & XattrFlags.CREATE:
        raise ThreeFSError(Code.META_EXISTS, f"inode {inode.id} already has xattr {request.name!r}")
    if not exists and request.flags & XattrFlags.REPLACE:
        raise ThreeFSError(Code.META_NO_XATTR, f"inode {inode.id} has no xattr {request.name!r}")
    if not exists:
        listed = sum(len(name) + 1 for name in _names(ctx, inode.id))
        if listed + len(request.name) + 1 > MAX_XATTR_LIST_BYTES:
            raise ThreeFSError(
                Code.META_NO_SPACE,
                f"the xattr names of inode {inode.id} would pass {MAX_XATTR_LIST_BYTES} bytes",
            )
    ctx.txn.set(key, request.value)
    return SetXattrResponse(inode=_touch(ctx, inode))


def list_xattr(ctx: OpContext, request: ListXattrRequest) -> ListXattrResponse:
    """The names in byte order, without those the caller may not read (``trusted.*``)."""
    inode = resolve(ctx, request.at, follow=request.follow)
    admin = permissions.is_root(ctx.caller)
    names = [name for name in _names(ctx, inode.id) if admin or not name.startswith(_TRUSTED)]
    return ListXattrResponse(names=names)


def remove_xattr(ctx: OpContext, request: RemoveXattrRequest) -> RemoveXattrResponse:
    """Remove; META_NO_XATTR when absent, permission and name errors as for set."""
    prefix = _check_name(request.name)
    inode = resolve(ctx, request.at, follow=request.follow)
    if prefix == _USER and not _user_xattrs_allowed(inode):
        raise ThreeFSError(Code.META_NO_XATTR, f"inode {inode.id} has no xattr {request.name!r}")
    _check_write(ctx, inode, prefix)
    key = keys.xattr_key(inode.id, request.name)
    if ctx.txn.get(key) is None:
        raise ThreeFSError(Code.META_NO_XATTR, f"inode {inode.id} has no xattr {request.name!r}")
    ctx.txn.clear(key)
    return RemoveXattrResponse(inode=_touch(ctx, inode))
