"""setattr: chmod, chown/chgrp, utimes (a value or "now") and truncate, with Linux's rules
(docs/meta.md "Setattr")."""

from __future__ import annotations

import stat

import msgspec

from meta.components import permissions
from meta.components.resolve import resolve
from meta.ops.context import OpContext
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.wire.meta import Inode, InodeType, SetAttrRequest, SetAttrResponse, TimeSpec

__all__ = ["plan_set_attr", "set_attr"]


def set_attr(ctx: OpContext, request: SetAttrRequest) -> SetAttrResponse:
    """Change the attributes ``request`` gives on what ``request.at`` names (the rules and
    errors are ``plan_set_attr``'s); ctime becomes now whenever anything is given."""
    inode, changes = plan_set_attr(ctx, request)
    if not _given(request):
        return SetAttrResponse(inode=inode)
    changes["ctime_ns"] = ctx.now_ns
    updated = msgspec.structs.replace(inode, **changes)
    records.save_inode(ctx.txn, updated)
    return SetAttrResponse(inode=updated)


def plan_set_attr(ctx: OpContext, request: SetAttrRequest) -> tuple[Inode, dict[str, object]]:
    """Check ``request`` and return the inode it names with the changes it makes (ctime
    aside); writes nothing, so the service runs it before it cuts chunks for a truncate too.

    - ``mode``: the owner or admin root (else META_NOT_PERMITTED). A caller other than admin
      root who is not in the inode's group gets the setgid bit dropped (Linux, any type).
    - ``uid``: admin root only (the owner may "change" it to itself); ``gid``: admin root, or
      the owner to a group it belongs to (else META_NOT_PERMITTED). On a non-directory a
      uid/gid change clears setuid, and setgid when group-execute is set (Linux).
    - ``atime``/``mtime``: "now" needs ownership, admin root or W permission
      (META_PERMISSION_DENIED); a value needs ownership or admin root (META_NOT_PERMITTED).
    - ``length``: files only (a directory is META_IS_DIRECTORY, other types INVALID_ARG);
      needs W (META_PERMISSION_DENIED). Shrinking bumps ``truncate_version``, so later length
      hints count from the truncate; mtime/ctime become now unless ``mtime`` is given. The
      service removes or truncates the chunks on storage around this op. A length past what
      the file's layout can address (``Layout.max_file_size``) is INVALID_ARG.
    """
    inode = resolve(ctx, request.at, follow=request.follow)
    caller = ctx.caller
    root = permissions.is_root(caller)
    owner = caller.uid == inode.uid
    changes: dict[str, object] = {}

    if request.uid is not None and not (root or (owner and request.uid == inode.uid)):
        raise ThreeFSError(Code.META_NOT_PERMITTED, f"only root may change the owner of inode {inode.id}")
    if request.gid is not None and not (
        root or (owner and (request.gid == inode.gid or permissions.in_group(caller, request.gid)))
    ):
        raise ThreeFSError(
            Code.META_NOT_PERMITTED, f"uid {caller.uid} may not change the group of inode {inode.id}"
        )
    if request.uid is not None:
        changes["uid"] = request.uid
    if request.gid is not None:
        changes["gid"] = request.gid

    mode = inode.mode
    if request.mode is not None:
        permissions.check_owner(inode, caller)
        mode = request.mode
        new_gid = request.gid if request.gid is not None else inode.gid
        if not root and not permissions.in_group(caller, new_gid):
            mode &= ~stat.S_ISGID
    elif (request.uid is not None or request.gid is not None) and inode.type != InodeType.DIRECTORY:
        mode &= ~stat.S_ISUID
        if mode & stat.S_IXGRP:
            mode &= ~stat.S_ISGID
    if mode != inode.mode or request.mode is not None:
        changes["mode"] = mode

    for field, spec in (("atime_ns", request.atime), ("mtime_ns", request.mtime)):
        if spec is not None:
            _check_time(inode, ctx, spec)
            changes[field] = ctx.now_ns if spec.now else spec.ns

    if request.length is not None:
        if inode.type == InodeType.DIRECTORY:
            raise ThreeFSError(Code.META_IS_DIRECTORY, f"inode {inode.id} is a directory")
        if inode.type != InodeType.FILE:
            raise ThreeFSError(Code.INVALID_ARG, f"inode {inode.id} is not a regular file")
        permissions.check(inode, caller, permissions.W, "truncate")
        if inode.layout is not None and request.length > inode.layout.max_file_size:
            raise ThreeFSError(
                Code.INVALID_ARG,
                f"length {request.length} of inode {inode.id} is past its layout's limit "
                f"of {inode.layout.max_file_size} bytes",
            )
        changes["length"] = request.length
        if request.length < inode.length:
            changes["truncate_version"] = inode.truncate_version + 1
        if request.mtime is None:
            changes["mtime_ns"] = ctx.now_ns
    return inode, changes


def _given(request: SetAttrRequest) -> bool:
    fields = (request.mode, request.uid, request.gid, request.atime, request.mtime, request.length)
    return any(value is not None for value in fields)


def _check_time(inode: Inode, ctx: OpContext, spec: TimeSpec) -> None:
    caller = ctx.caller
    if caller.uid == inode.uid or permissions.is_root(caller):
        return
    if spec.now:
        permissions.check(inode, caller, permissions.W, "set times to now")
        return
    raise ThreeFSError(Code.META_NOT_PERMITTED, f"only the owner may set the times of inode {inode.id}")
