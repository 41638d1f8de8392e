"""sync/close of a writer, and pruning the write sessions of dead clients
(docs/meta.md "Sessions and length").

A write session (``INOS`` + inode + session id) lives from a write open to its close. While a
file has one, unlinking its last name keeps the inode (nlink 0, no entry); closing or pruning the
last session then queues it for GC.
"""

from __future__ import annotations

from collections.abc import Collection

import msgspec

from meta.components import permissions
from meta.ops.context import OpContext
from meta.ops.remove import release_if_unused
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.kv import keys
from threefs.wire.meta import FileSession, InodeType, SyncRequest, SyncResponse

__all__ = ["all_sessions", "prune_sessions", "sessions_of", "sync"]

_SESSION = msgspec.msgpack.Decoder(FileSession)


def sync(ctx: OpContext, request: SyncRequest) -> SyncResponse:
    """Apply a writer's report on file ``request.inode``.

    - ``session_id`` given: it must be an open session of this inode (META_STALE_SESSION: it
      was closed or pruned; a retried close is answered by idempotency before this runs).
      Without one, the caller needs W on the file (META_PERMISSION_DENIED) and cannot close.
    - ``length_hint``: the length becomes ``max(length, hint)``; a hint never lowers it. A
      hint past what the file's layout can address (``Layout.max_file_size``) is INVALID_ARG.
    - ``wrote``: mtime and ctime become now.
    - ``close``: the session ends; a file with nlink 0 and no session left goes to GC (the
      response still shows it, with nlink 0).

    Errors: META_NOT_FOUND (no such inode), META_IS_DIRECTORY / INVALID_ARG (not a file).
    """
    inode = records.require_inode(ctx.txn, request.inode)
    if inode.type == InodeType.DIRECTORY:
        raise ThreeFSError(Code.META_IS_DIRECTORY, f"inode {inode.id} is a directory")
    if inode.type != InodeType.FILE:
        raise ThreeFSError(Code.INVALID_ARG, f"inode {inode.id} is not a regular file")
    if request.session_id:
        key = keys.inode_session_key(inode.id, request.session_id)
        if ctx.txn.get(key) is None:
            raise ThreeFSError(
                Code.META_STALE_SESSION, f"no open session {request.session_id.hex()} on inode {inode.id}"
            )
    elif request.close:
        raise ThreeFSError(Code.INVALID_ARG, "close needs the session id of the write open")
    else:
        permissions.check(inode, ctx.caller, permissions.W, "sync")

    hint = request.length_hint
    if hint is not None and inode.layout is not None and hint > inode.layout.max_file_size:
        raise ThreeFSError(
            Code.INVALID_ARG,
            f"length hint {hint} of inode {inode.id} is past its layout's limit "
            f"of {inode.layout.max_file_size} bytes",
        )
    changes: dict[str, object] = {}
    if hint is not None and hint > inode.length:
        changes["length"] = hint
    if request.wrote:
        changes.update(mtime_ns=ctx.now_ns, ctime_ns=ctx.now_ns)
    if changes:
        inode = msgspec.structs.replace(inode, **changes)
        records.save_inode(ctx.txn, inode)
    if request.close:
        records.delete_session(ctx.txn, inode.id, request.session_id)
        release_if_unused(ctx, inode, "last session closed")
    return SyncResponse(inode=inode)


def sessions_of(ctx: OpContext, inode_id: int) -> list[FileSession]:
    """The open write sessions of one inode."""
    return records.list_sessions(ctx.txn, inode_id)


def all_sessions(ctx: OpContext, limit: int = 0) -> list[FileSession]:
    """Every open write session (``limit`` 0: all), in inode-key order, read as a snapshot (no
    conflicts: the service only uses it to find clients to check with mgmtd)."""
    begin, end = keys.prefix_range(keys.Prefix.INODE_SESSION.value)
    return [_SESSION.decode(value) for _, value in ctx.txn.snapshot_get_range(begin, end, limit=limit)]


def prune_sessions(
    ctx: OpContext, *, dead_clients: Collection[bytes] = (), dead_nodes: Collection[int] = ()
) -> int:
    """Remove the sessions held by a client id in ``dead_clients`` or by a registered client
    node in ``dead_nodes`` (node 0, "not registered", never matches), and queue for GC every
    file left with nlink 0 and no session. Returns how many sessions were removed. The service
    calls it with the clients mgmtd no longer lists."""
    dead_client_set = set(dead_clients)
    dead_node_set = set(dead_nodes) - {0}
    if not dead_client_set and not dead_node_set:
        return 0
    begin, end = keys.prefix_range(keys.Prefix.INODE_SESSION.value)
    touched: set[int] = set()
    removed = 0
    for key, value in ctx.txn.get_range(begin, end):
        session = _SESSION.decode(value)
        if session.client_id in dead_client_set or session.client_node in dead_node_set:
            ctx.txn.clear(key)
            touched.add(session.inode)
            removed += 1
    for inode_id in sorted(touched):
        inode = records.load_inode(ctx.txn, inode_id)
        if inode is not None:
            release_if_unused(ctx, inode, "sessions of a dead client pruned")
    return removed
