"""unlink, rmdir and rm -r: take entries out of the namespace and hand unlinked files to GC.

Lifetime of a file inode (docs/meta.md "Removal and GC"): each entry naming it is one link.
When its last link goes (``nlink`` 0) and no write session is open, the inode record is deleted
and a copy of it is put on the GC queue (``GCQU``, due ``now + env.gc_delay_ns``): the GC worker
needs only the job to remove the chunks. With write sessions open the inode stays, with nlink 0
and no entry (an orphan with sessions), until ``sync`` closes its last session or
``prune_sessions`` drops the sessions of a dead client; then it is queued the same way.
Directories, symlinks and device nodes own no chunks: their inode is deleted at once.
"""

from __future__ import annotations

import msgspec

from meta.components import permissions
from meta.components.inodes import touch_dir
from meta.components.names import check_new_name
from meta.components.resolve import resolve_parent
from meta.ops.context import OpContext
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.wire.meta import Inode, InodeType, RemoveRequest, RemoveResponse

__all__ = ["drop_link", "queue_for_gc", "release_if_unused", "remove"]


def queue_for_gc(ctx: OpContext, inode: Inode, reason: str) -> int:
    """Delete ``inode``'s record and, for a file, queue a copy of it for GC (due after the
    configured delay). Returns how many inodes were queued (0 or 1). The caller made sure it
    has no entry and no write session left."""
    records.delete_inode(ctx.txn, inode.id)
    if inode.type != InodeType.FILE:
        return 0
    due_ns = ctx.now_ns + ctx.env.gc_delay_ns
    records.queue_gc(ctx.txn, inode, due_ns=due_ns, queued_ns=ctx.now_ns, reason=reason)
    return 1


def release_if_unused(ctx: OpContext, inode: Inode, reason: str) -> int:
    """Queue ``inode`` for GC when it has no link and no write session; returns the number
    queued. Used after a link or a session went away."""
    if inode.nlink > 0 or records.list_sessions(ctx.txn, inode.id):
        return 0
    return queue_for_gc(ctx, inode, reason)


def drop_link(ctx: OpContext, inode: Inode, reason: str) -> int:
    """One entry naming non-directory ``inode`` was removed (by the caller): decrement its link
    count and, at 0 with no write session, queue it for GC. Returns how many were queued."""
    inode = msgspec.structs.replace(inode, nlink=max(inode.nlink - 1, 0), ctime_ns=ctx.now_ns)
    if inode.nlink == 0 and not records.list_sessions(ctx.txn, inode.id):
        return queue_for_gc(ctx, inode, reason)
    records.save_inode(ctx.txn, inode)
    return 0


def remove(ctx: OpContext, request: RemoveRequest) -> RemoveResponse:
    """Remove what ``request.at`` names (the last component is not followed).

    - ``directory`` False, not ``recursive``: unlink; a directory is META_IS_DIRECTORY.
    - ``directory`` True: rmdir; a non-directory is META_NOT_DIRECTORY, a directory with
      entries META_NOT_EMPTY.
    - ``recursive``: a file is unlinked, a directory is removed with everything under it in
      this one transaction (every directory in the tree must allow the caller R+W+X, and
      sticky directories the removal of each entry); a very large tree may pass the KV
      engine's transaction limit (KV_TXN_TOO_LARGE), and then nothing is removed.

    The root, ``.``, ``..`` and an empty path are META_INVALID_NAME. The caller needs W+X on
    the parent and passes the sticky-bit rule. Nothing changes when an error is raised.
    """
    resolved = resolve_parent(ctx, request.at)
    if not resolved.name:
        raise ThreeFSError(Code.META_INVALID_NAME, "cannot remove the root or a path's own directory")
    check_new_name(resolved.name)
    if resolved.entry is None:
        raise ThreeFSError(Code.META_NOT_FOUND, f"no entry {resolved.name!r} in inode {resolved.parent.id}")
    parent = resolved.parent
    permissions.check(parent, ctx.caller, permissions.W | permissions.X, "remove an entry")
    victim = resolved.inode
    if victim is None:
        # A dangling entry (its inode is gone): removing the name is all there is to do.
        if request.directory and resolved.entry.type != InodeType.DIRECTORY:
            raise ThreeFSError(Code.META_NOT_DIRECTORY, f"{resolved.name!r} is not a directory")
        records.delete_entry(ctx.txn, parent.id, resolved.name)
        touch_dir(ctx, parent)
        return RemoveResponse(queued_for_gc=0)
    permissions.check_sticky(parent, victim, ctx.caller)
    is_dir = victim.type == InodeType.DIRECTORY
    if (request.directory or resolved.trailing_slash) and not is_dir:
        raise ThreeFSError(Code.META_NOT_DIRECTORY, f"{resolved.name!r} is not a directory")
    if is_dir and not request.directory and not request.recursive:
        raise ThreeFSError(Code.META_IS_DIRECTORY, f"{resolved.name!r} is a directory")

    if not is_dir:
        records.delete_entry(ctx.txn, parent.id, resolved.name)
        touch_dir(ctx, parent)
        return RemoveResponse(queued_for_gc=drop_link(ctx, victim, "unlink"))
    if not request.recursive and records.has_entries(ctx.txn, victim.id):
        raise ThreeFSError(Code.META_NOT_EMPTY, f"directory {resolved.name!r} is not empty")
    queued = _remove_tree(ctx, victim) if request.recursive else 0
    records.delete_inode(ctx.txn, victim.id)
    records.delete_entry(ctx.txn, parent.id, resolved.name)
    touch_dir(ctx, parent, nlink_delta=-1)
    return RemoveResponse(queued_for_gc=queued)


def _remove_tree(ctx: OpContext, top: Inode) -> int:
    """Remove every entry under directory ``top`` and every inode that loses its last link;
    the inodes of the directories below ``top`` are deleted, ``top`` itself is left to the
    caller. Permission checks happen before the first change of each directory, and any
    refusal aborts the whole transaction, so a refused rm -r changes nothing."""
    queued = 0
    pending = [top]
    while pending:
        directory = pending.pop()
        permissions.check(
            directory, ctx.caller, permissions.R | permissions.W | permissions.X, "remove a tree"
        )
        for name, entry in records.list_entries(ctx.txn, directory.id):
            child = records.load_inode(ctx.txn, entry.inode)
            if child is not None:
                permissions.check_sticky(directory, child, ctx.caller)
            records.delete_entry(ctx.txn, directory.id, name)
            if child is None:
                continue
            if child.type == InodeType.DIRECTORY:
                records.delete_inode(ctx.txn, child.id)
                pending.append(child)
            else:
                queued += drop_link(ctx, child, "rm -r")
    return queued
