"""rename: move an entry atomically, with POSIX's replace rules, RENAME_NOREPLACE and
RENAME_EXCHANGE (docs/meta.md "Rename")."""

from __future__ import annotations

import msgspec

from meta.components import permissions
from meta.components.names import check_new_name
from meta.components.resolve import Resolved, is_ancestor, resolve_parent
from meta.ops.context import OpContext
from meta.ops.remove import drop_link
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.wire.meta import (
    MAX_LINKS,
    DirEntry,
    Inode,
    InodeType,
    RenameFlags,
    RenameRequest,
    RenameResponse,
)

__all__ = ["rename"]


def _side(ctx: OpContext, resolved: Resolved, what: str) -> bytes:
    if not resolved.name:
        raise ThreeFSError(Code.META_INVALID_NAME, f"the {what} of a rename cannot be the root or '.'")
    return check_new_name(resolved.name)


def _check_not_under(ctx: OpContext, moved: Inode, new_parent: Inode) -> None:
    """A directory may not become its own descendant (POSIX: EINVAL)."""
    if moved.type != InodeType.DIRECTORY:
        return
    if new_parent.id == moved.id or is_ancestor(ctx, moved.id, new_parent.id):
        raise ThreeFSError(
            Code.META_INVALID_NAME,
            f"cannot move directory {moved.id} into its own subtree (under inode {new_parent.id})",
        )


def rename(ctx: OpContext, request: RenameRequest) -> RenameResponse:
    """Rename ``request.src`` to ``request.dst`` (neither last component is followed).

    Rules: the source must exist (META_NOT_FOUND); with NOREPLACE an existing destination is
    META_EXISTS; with EXCHANGE both must exist and swap places (unknown flags, or NOREPLACE and
    EXCHANGE together, are INVALID_ARG: Linux's EINVAL). Otherwise an existing destination is
    replaced when the types agree: file over file, directory over an empty directory
    (META_NOT_EMPTY otherwise), directory over non-directory is META_NOT_DIRECTORY, a
    non-directory over a directory META_IS_DIRECTORY. Source and destination naming the same
    inode (the same entry, or two hard links) is a successful no-op. A directory never moves
    under itself (META_INVALID_NAME). The caller needs W+X on both parents, passes the sticky
    rule on both sides, and needs W on a directory that changes parent (its ``..`` changes).

    A replaced file loses a link (GC at the last one without sessions); a replaced directory
    is deleted. Returns the moved inode and the one the destination named before.
    """
    flags = request.flags
    if flags & ~(RenameFlags.NOREPLACE | RenameFlags.EXCHANGE):
        raise ThreeFSError(Code.INVALID_ARG, f"unknown rename flags {flags:#x}")
    exchange = bool(flags & RenameFlags.EXCHANGE)
    if exchange and flags & RenameFlags.NOREPLACE:
        raise ThreeFSError(Code.INVALID_ARG, "RENAME_EXCHANGE and RENAME_NOREPLACE exclude each other")

    src = resolve_parent(ctx, request.src)
    dst = resolve_parent(ctx, request.dst)
    src_name, dst_name = _side(ctx, src, "source"), _side(ctx, dst, "destination")
    if src.entry is None or src.inode is None:
        raise ThreeFSError(Code.META_NOT_FOUND, f"no entry {src_name!r} in inode {src.parent.id}")
    moved = src.inode
    if (src.trailing_slash or dst.trailing_slash) and moved.type != InodeType.DIRECTORY:
        raise ThreeFSError(Code.META_NOT_DIRECTORY, f"{src_name!r} is not a directory (trailing '/')")
    same_parent = src.parent.id == dst.parent.id
    permissions.check(src.parent, ctx.caller, permissions.W | permissions.X, "rename from")
    if not same_parent:
        permissions.check(dst.parent, ctx.caller, permissions.W | permissions.X, "rename into")
    permissions.check_sticky(src.parent, moved, ctx.caller)
    target = dst.inode if dst.entry is not None else None
    if dst.entry is not None and target is not None:
        permissions.check_sticky(dst.parent, target, ctx.caller)
    if dst.entry is not None and flags & RenameFlags.NOREPLACE:
        raise ThreeFSError(Code.META_EXISTS, f"{dst_name!r} exists (RENAME_NOREPLACE)")
    if exchange and (dst.entry is None or target is None):
        raise ThreeFSError(Code.META_NOT_FOUND, f"no entry {dst_name!r} to exchange with")
    if target is not None and target.id == moved.id:
        return RenameResponse(inode=moved, replaced=target)

    _check_not_under(ctx, moved, dst.parent)
    if not same_parent and moved.type == InodeType.DIRECTORY:
        permissions.check(moved, ctx.caller, permissions.W, "move a directory to another parent")
    if exchange and target is not None:  # target is never None here (checked above)
        _check_not_under(ctx, target, src.parent)
        if not same_parent and target.type == InodeType.DIRECTORY:
            permissions.check(target, ctx.caller, permissions.W, "move a directory to another parent")
        return _exchange(ctx, src, dst, moved, target)
    return _move(ctx, src, dst, moved, target)


def _relocated(ctx: OpContext, inode: Inode, parent: int, name: bytes) -> Inode:
    """``inode`` after it was moved to ``(parent, name)``: ctime now, and a directory's
    ``parent``/``name`` follow it."""
    if inode.type == InodeType.DIRECTORY:
        return msgspec.structs.replace(inode, parent=parent, name=name, ctime_ns=ctx.now_ns)
    return msgspec.structs.replace(inode, ctime_ns=ctx.now_ns)


def _save_parents(ctx: OpContext, src: Resolved, dst: Resolved, src_delta: int, dst_delta: int) -> None:
    """Both parents get mtime/ctime now and their link counts moved (one save when equal)."""
    stamp = {"mtime_ns": ctx.now_ns, "ctime_ns": ctx.now_ns}
    if src.parent.id == dst.parent.id:
        nlink = src.parent.nlink + src_delta + dst_delta
        records.save_inode(ctx.txn, msgspec.structs.replace(src.parent, nlink=nlink, **stamp))
        return
    for parent, delta in ((src.parent, src_delta), (dst.parent, dst_delta)):
        if delta > 0 and parent.nlink + delta > MAX_LINKS:
            raise ThreeFSError(Code.META_TOO_MANY_LINKS, f"directory {parent.id} has too many links")
        records.save_inode(ctx.txn, msgspec.structs.replace(parent, nlink=parent.nlink + delta, **stamp))


def _move(ctx: OpContext, src: Resolved, dst: Resolved, moved: Inode, target: Inode | None) -> RenameResponse:
    moved_is_dir = moved.type == InodeType.DIRECTORY
    dst_delta = 0
    if dst.entry is not None and target is not None:
        if moved_is_dir and target.type != InodeType.DIRECTORY:
            raise ThreeFSError(Code.META_NOT_DIRECTORY, f"{dst.name!r} is not a directory")
        if not moved_is_dir and target.type == InodeType.DIRECTORY:
            raise ThreeFSError(Code.META_IS_DIRECTORY, f"{dst.name!r} is a directory")
        if target.type == InodeType.DIRECTORY:
            if records.has_entries(ctx.txn, target.id):
                raise ThreeFSError(Code.META_NOT_EMPTY, f"directory {dst.name!r} is not empty")
            records.delete_inode(ctx.txn, target.id)
            dst_delta -= 1
    src_delta = 0
    if moved_is_dir and src.parent.id != dst.parent.id:
        src_delta, dst_delta = -1, dst_delta + 1
    _save_parents(ctx, src, dst, src_delta, dst_delta)
    records.delete_entry(ctx.txn, src.parent.id, src.name)
    records.save_entry(ctx.txn, dst.parent.id, dst.name, DirEntry(moved.id, moved.type))
    moved = _relocated(ctx, moved, dst.parent.id, dst.name)
    records.save_inode(ctx.txn, moved)
    if target is not None and target.type != InodeType.DIRECTORY:
        drop_link(ctx, target, "replaced by rename")
    return RenameResponse(inode=moved, replaced=target)


def _exchange(ctx: OpContext, src: Resolved, dst: Resolved, moved: Inode, target: Inode) -> RenameResponse:
    moved_dir = int(moved.type == InodeType.DIRECTORY)
    target_dir = int(target.type == InodeType.DIRECTORY)
    delta = 0 if src.parent.id == dst.parent.id else target_dir - moved_dir
    _save_parents(ctx, src, dst, delta, -delta)
    records.save_entry(ctx.txn, src.parent.id, src.name, DirEntry(target.id, target.type))
    records.save_entry(ctx.txn, dst.parent.id, dst.name, DirEntry(moved.id, moved.type))
    moved = _relocated(ctx, moved, dst.parent.id, dst.name)
    records.save_inode(ctx.txn, moved)
    records.save_inode(ctx.txn, _relocated(ctx, target, src.parent.id, src.name))
    return RenameResponse(inode=moved, replaced=target)
