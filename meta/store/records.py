"""Typed access to meta's KV records inside one transaction (keys: ``threefs.kv.keys``).

Every function takes the transaction of the operation that calls it; reads add read conflicts
(so two operations that touch the same inode or entry conflict and one retries), except where a
name says ``snapshot``. Values are MessagePack of the ``threefs.wire.meta`` structs.
"""

from __future__ import annotations

import msgspec

from threefs.errors import Code, ThreeFSError
from threefs.kv import keys
from threefs.kv.interface import Transaction
from threefs.wire.meta import DirEntry, FileSession, GcJob, Inode

__all__ = [
    "delete_entry",
    "delete_inode",
    "delete_session",
    "has_entries",
    "list_entries",
    "list_gc_jobs",
    "list_sessions",
    "load_entry",
    "load_inode",
    "queue_gc",
    "require_inode",
    "save_entry",
    "save_inode",
    "save_session",
]

_ENCODER = msgspec.msgpack.Encoder()
_INODE = msgspec.msgpack.Decoder(Inode)
_ENTRY = msgspec.msgpack.Decoder(DirEntry)
_SESSION = msgspec.msgpack.Decoder(FileSession)
_GC_JOB = msgspec.msgpack.Decoder(GcJob)


def load_inode(txn: Transaction, inode_id: int) -> Inode | None:
    raw = txn.get(keys.inode_key(inode_id))
    return None if raw is None else _INODE.decode(raw)


def require_inode(txn: Transaction, inode_id: int) -> Inode:
    """The inode, or META_NOT_FOUND."""
    inode = load_inode(txn, inode_id)
    if inode is None:
        raise ThreeFSError(Code.META_NOT_FOUND, f"no inode {inode_id}")
    return inode


def save_inode(txn: Transaction, inode: Inode) -> None:
    txn.set(keys.inode_key(inode.id), _ENCODER.encode(inode))


def delete_inode(txn: Transaction, inode_id: int) -> None:
    """Delete the inode record and its extended attributes."""
    txn.clear(keys.inode_key(inode_id))
    txn.clear_range(*keys.prefix_range(keys.xattr_prefix(inode_id)))


def load_entry(txn: Transaction, parent: int, name: bytes) -> DirEntry | None:
    raw = txn.get(keys.dentry_key(parent, name))
    return None if raw is None else _ENTRY.decode(raw)


def save_entry(txn: Transaction, parent: int, name: bytes, entry: DirEntry) -> None:
    txn.set(keys.dentry_key(parent, name), _ENCODER.encode(entry))


def delete_entry(txn: Transaction, parent: int, name: bytes) -> None:
    txn.clear(keys.dentry_key(parent, name))


def list_entries(
    txn: Transaction, parent: int, after: bytes = b"", limit: int = 0
) -> list[tuple[bytes, DirEntry]]:
    """Entries of directory ``parent`` with names after ``after`` in byte order (``limit`` 0:
    all). The range read makes a concurrent create/remove in the directory conflict."""
    prefix = keys.dentry_prefix(parent)
    begin, end = keys.prefix_range(prefix)
    if after:
        begin = prefix + after + b"\x00"
    rows = txn.get_range(begin, end, limit=limit)
    return [(key[len(prefix) :], _ENTRY.decode(value)) for key, value in rows]


def has_entries(txn: Transaction, parent: int) -> bool:
    return bool(list_entries(txn, parent, limit=1))


def save_session(txn: Transaction, session: FileSession) -> None:
    txn.set(keys.inode_session_key(session.inode, session.session_id), _ENCODER.encode(session))


def delete_session(txn: Transaction, inode_id: int, session_id: bytes) -> bool:
    """Remove a session; False when it was not there."""
    key = keys.inode_session_key(inode_id, session_id)
    if txn.get(key) is None:
        return False
    txn.clear(key)
    return True


def list_sessions(txn: Transaction, inode_id: int) -> list[FileSession]:
    begin, end = keys.prefix_range(keys.inode_session_prefix(inode_id))
    return [_SESSION.decode(value) for _, value in txn.get_range(begin, end)]


def queue_gc(txn: Transaction, inode: Inode, due_ns: int, queued_ns: int, reason: str) -> None:
    """Put ``inode`` on the GC queue (its chunks are removed from ``due_ns`` on, then the job)."""
    job = GcJob(inode=inode, queued_ns=queued_ns, reason=reason)
    txn.set(keys.gc_queue_key(due_ns, inode.id), _ENCODER.encode(job))


def list_gc_jobs(
    txn: Transaction, limit: int = 0, *, snapshot: bool = False
) -> list[tuple[bytes, int, GcJob]]:
    """``(key, due_ns, job)`` in due order."""
    begin, end = keys.prefix_range(keys.Prefix.GC_QUEUE.value)
    read = txn.snapshot_get_range if snapshot else txn.get_range
    rows = read(begin, end, limit=limit)
    prefix_len = len(keys.Prefix.GC_QUEUE.value)
    return [
        (key, int.from_bytes(key[prefix_len : prefix_len + 8], "big"), _GC_JOB.decode(value))
        for key, value in rows
    ]
