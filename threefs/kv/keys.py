"""The key layout: every key starts with a 4-byte prefix naming its table (DESIGN.md section 5).

Integers are fixed-width so keys of one table sort and split predictably: inode ids are little
endian, which spreads consecutive inodes over the keyspace (and over FoundationDB's storage
servers) instead of piling new ones at its end; ids that are listed in order (nodes, chains,
targets, tables, GC due times) are big endian so the byte order is the numeric order.
"""

from __future__ import annotations

import struct
from enum import Enum

from threefs.errors import Code, ThreeFSError
from threefs.kv.interface import KEYSPACE_END

__all__ = [
    "Prefix",
    "prefix_range",
    "inode_key",
    "parse_inode_key",
    "dentry_key",
    "dentry_prefix",
    "inode_session_key",
    "inode_session_prefix",
    "idempotency_key",
    "node_key",
    "chain_key",
    "chain_table_key",
    "target_key",
    "lease_key",
    "config_key",
    "gc_queue_key",
    "user_key",
    "xattr_key",
    "xattr_prefix",
    "INODE_ALLOCATOR_KEY",
    "CLUSTER_KEY",
]


class Prefix(bytes, Enum):
    """The table of key prefixes. Each is exactly 4 bytes and never reused for another table."""

    INODE = b"INOD"  # INOD + inode id (u64 LE) -> inode
    DENTRY = b"DENT"  # DENT + parent inode id (u64 LE) + name -> dir entry
    INODE_SESSION = b"INOS"  # INOS + inode id (u64 LE) + session id -> file (write) session
    IDEMPOTENCY = b"IDEM"  # IDEM + client id (16 bytes) + request id (u64 BE) -> first result
    NODE = b"NODE"  # NODE + node id (u32 BE) -> node info
    CHAIN = b"CHAN"  # CHAN + chain id (u32 BE) -> chain info
    CHAIN_TABLE = b"CTBL"  # CTBL + table id (u32 BE) + version (u32 BE) -> chain table
    TARGET = b"TGT_"  # TGT_ + target id (u64 BE) -> target info
    LEASE = b"LEAS"  # LEAS -> the mgmtd primary lease
    CONFIG = b"CONF"  # CONF + name -> a stored configuration document
    GC_QUEUE = b"GCQU"  # GCQU + due time (ns, u64 BE) + inode id (u64 LE) -> removal job
    USER = b"USER"  # USER + user name (UTF-8) -> user record with its key (docs/security.md)
    INODE_ALLOCATOR = b"IALC"  # IALC -> next free inode id block
    CLUSTER = b"CLUS"  # CLUS -> cluster id and on-disk format version
    XATTR = b"XATT"  # XATT + inode id (u64 LE) + name -> extended attribute value (raw bytes)


INODE_ALLOCATOR_KEY = Prefix.INODE_ALLOCATOR.value
CLUSTER_KEY = Prefix.CLUSTER.value
_U32_MAX = (1 << 32) - 1
_U64_MAX = (1 << 64) - 1


def _u64(what: str, number: int) -> int:
    if not isinstance(number, int) or not 0 <= number <= _U64_MAX:
        raise ThreeFSError(Code.INVALID_ARG, f"{what} must be an integer in [0, 2^64), not {number!r}")
    return number


def _u32(what: str, number: int) -> int:
    if not isinstance(number, int) or not 0 <= number <= _U32_MAX:
        raise ThreeFSError(Code.INVALID_ARG, f"{what} must be an integer in [0, 2^32), not {number!r}")
    return number


def _blob(what: str, data: bytes) -> bytes:
    if not isinstance(data, bytes):
        raise ThreeFSError(Code.INVALID_ARG, f"{what} must be bytes, not {type(data).__name__}")
    return data


def prefix_range(prefix: bytes) -> tuple[bytes, bytes]:
    """``(begin, end)`` covering exactly the keys that start with ``prefix``.

    ``end`` is ``prefix`` with trailing 0xff bytes dropped and its last byte incremented
    (FoundationDB's ``strinc``); the empty prefix gives the whole user keyspace. A prefix of
    only 0xff bytes lies in the reserved keyspace and raises ``INVALID_ARG``.
    """
    prefix = _blob("prefix", prefix)
    if not prefix:
        return b"", KEYSPACE_END
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        raise ThreeFSError(Code.INVALID_ARG, f"no key range follows the prefix {prefix!r}")
    return prefix, stripped[:-1] + bytes([stripped[-1] + 1])


def inode_key(inode_id: int) -> bytes:
    return Prefix.INODE.value + struct.pack("<Q", _u64("inode id", inode_id))


def parse_inode_key(key: bytes) -> int:
    """The inode id of an ``inode_key``; ``INVALID_ARG`` for any other key."""
    if len(key) != 12 or not key.startswith(Prefix.INODE.value):
        raise ThreeFSError(Code.INVALID_ARG, f"not an inode key: {key!r}")
    return struct.unpack("<Q", key[4:])[0]


def dentry_prefix(parent_id: int) -> bytes:
    """The prefix of all entries of directory ``parent_id`` (list it with ``prefix_range``)."""
    return Prefix.DENTRY.value + struct.pack("<Q", _u64("parent inode id", parent_id))


def dentry_key(parent_id: int, name: bytes) -> bytes:
    return dentry_prefix(parent_id) + _blob("name", name)


def inode_session_prefix(inode_id: int) -> bytes:
    return Prefix.INODE_SESSION.value + struct.pack("<Q", _u64("inode id", inode_id))


def inode_session_key(inode_id: int, session_id: bytes) -> bytes:
    return inode_session_prefix(inode_id) + _blob("session id", session_id)


def idempotency_key(client_id: bytes, request_id: int) -> bytes:
    """``client_id`` is a 16-byte UUID, so the request id that follows is unambiguous."""
    if not isinstance(client_id, bytes) or len(client_id) != 16:
        raise ThreeFSError(Code.INVALID_ARG, f"client id must be 16 bytes, not {client_id!r}")
    return Prefix.IDEMPOTENCY.value + client_id + struct.pack(">Q", _u64("request id", request_id))


def node_key(node_id: int) -> bytes:
    return Prefix.NODE.value + struct.pack(">I", _u32("node id", node_id))


def chain_key(chain_id: int) -> bytes:
    return Prefix.CHAIN.value + struct.pack(">I", _u32("chain id", chain_id))


def chain_table_key(table_id: int, version: int) -> bytes:
    return Prefix.CHAIN_TABLE.value + struct.pack(
        ">II", _u32("chain table id", table_id), _u32("chain table version", version)
    )


def target_key(target_id: int) -> bytes:
    return Prefix.TARGET.value + struct.pack(">Q", _u64("target id", target_id))


def lease_key() -> bytes:
    return Prefix.LEASE.value


def config_key(name: str) -> bytes:
    if not isinstance(name, str) or not name:
        raise ThreeFSError(Code.INVALID_ARG, f"config name must be a non-empty str, not {name!r}")
    return Prefix.CONFIG.value + name.encode()


def gc_queue_key(due_ns: int, inode_id: int) -> bytes:
    """Ordered by due time, so the GC worker scans from the front of ``prefix_range(GCQU)``."""
    return (
        Prefix.GC_QUEUE.value
        + struct.pack(">Q", _u64("due time", due_ns))
        + struct.pack("<Q", _u64("inode id", inode_id))
    )


def user_key(name: bytes) -> bytes:
    """A user's row, by its name (mgmtd.store.user_store)."""
    return Prefix.USER.value + _blob("user name", name)


def xattr_prefix(inode_id: int) -> bytes:
    """The prefix of all extended attributes of ``inode_id`` (list or clear with ``prefix_range``)."""
    return Prefix.XATTR.value + struct.pack("<Q", _u64("inode id", inode_id))


def xattr_key(inode_id: int, name: bytes) -> bytes:
    return xattr_prefix(inode_id) + _blob("xattr name", name)
