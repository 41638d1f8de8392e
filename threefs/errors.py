"""The one registry of threefs error codes, and the exception that carries them.

Codes live in ranges per subsystem (0-999 common, 1xxx KV/transaction, 2xxx RPC, 3xxx meta,
4xxx storage, 5xxx mgmtd, 6xxx client). Each code says whether a caller may retry it and which
errno a FUSE mount answers for it. A code is never renumbered or reused; retired codes stay
listed in ``RETIRED_CODES``. ``python -m threefs.errors_doc`` renders the reference page
``docs/errors.md`` from this registry.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass
from enum import IntEnum


@dataclass(frozen=True)
class CodeInfo:
    """What the registry knows about one code."""

    retryable: bool
    errno: int
    summary: str


RANGES: dict[str, range] = {
    "common": range(0, 1000),
    "kv": range(1000, 2000),
    "rpc": range(2000, 3000),
    "meta": range(3000, 4000),
    "storage": range(4000, 5000),
    "mgmtd": range(5000, 6000),
    "client": range(6000, 7000),
}


class Code(IntEnum):
    """Every error code threefs can raise or send over the wire."""

    # 0-999 common
    OK = 0
    INTERNAL = 1
    INVALID_ARG = 2
    NOT_IMPLEMENTED = 3
    TIMEOUT = 4
    CANCELLED = 5
    CONFIG_INVALID = 6
    PERMISSION_DENIED = 7
    UNAUTHENTICATED = 8
    NOT_FOUND = 9
    ALREADY_EXISTS = 10
    RESOURCE_EXHAUSTED = 11
    IO_ERROR = 12

    # 1xxx KV / transaction
    KV_CONFLICT = 1000
    KV_RETRY_LIMIT = 1001
    KV_KEY_TOO_LARGE = 1002
    KV_VALUE_TOO_LARGE = 1003
    KV_TXN_TOO_OLD = 1004
    KV_UNAVAILABLE = 1005
    KV_TXN_CLOSED = 1006
    KV_COMMIT_UNKNOWN = 1007
    KV_TXN_TOO_LARGE = 1008
    KV_READ_ONLY = 1009

    # 2xxx RPC
    RPC_CONNECT_FAILED = 2000
    RPC_CONNECTION_CLOSED = 2001
    RPC_DEADLINE_EXCEEDED = 2002
    RPC_BAD_FRAME = 2003
    RPC_BAD_CHECKSUM = 2004
    RPC_FRAME_TOO_LARGE = 2005
    RPC_UNKNOWN_SERVICE = 2006
    RPC_UNKNOWN_METHOD = 2007
    RPC_INVALID_BODY = 2008
    RPC_AUTH_FAILED = 2009
    RPC_VERSION_MISMATCH = 2010
    RPC_SERVER_OVERLOADED = 2011

    # 3xxx meta
    META_NOT_FOUND = 3000
    META_EXISTS = 3001
    META_NOT_DIRECTORY = 3002
    META_IS_DIRECTORY = 3003
    META_NOT_EMPTY = 3004
    META_NAME_TOO_LONG = 3005
    META_PATH_TOO_LONG = 3006
    META_INVALID_NAME = 3007
    META_PERMISSION_DENIED = 3008
    META_NOT_PERMITTED = 3009
    META_CROSS_DEVICE = 3010
    META_TOO_MANY_LINKS = 3011
    META_LOOP = 3012
    META_BUSY = 3013
    META_NO_SPACE = 3014
    META_BAD_LAYOUT = 3015
    META_STALE_SESSION = 3016
    META_NO_XATTR = 3017
    META_XATTR_TOO_LARGE = 3018
    META_XATTR_NAME_INVALID = 3019
    META_XATTR_UNSUPPORTED = 3020

    # 4xxx storage
    STORAGE_CHUNK_NOT_FOUND = 4000
    STORAGE_CHUNK_NOT_COMMITTED = 4001
    STORAGE_STALE_CHAIN_VERSION = 4002
    STORAGE_TARGET_NOT_FOUND = 4003
    STORAGE_TARGET_OFFLINE = 4004
    STORAGE_NOT_HEAD = 4005
    STORAGE_CHECKSUM_MISMATCH = 4006
    STORAGE_NO_SPACE = 4007
    STORAGE_CHUNK_LOCKED = 4008
    STORAGE_BAD_OFFSET = 4009
    STORAGE_IO_ERROR = 4010
    STORAGE_SYNCING = 4011
    STORAGE_STALE_UPDATE = 4012

    # 5xxx mgmtd
    MGMTD_NOT_PRIMARY = 5000
    MGMTD_NODE_NOT_FOUND = 5001
    MGMTD_CHAIN_NOT_FOUND = 5002
    MGMTD_TABLE_NOT_FOUND = 5003
    MGMTD_STALE_ROUTING = 5004
    MGMTD_BAD_HEARTBEAT = 5005
    MGMTD_LEASE_LOST = 5006
    MGMTD_TARGET_NOT_FOUND = 5007
    MGMTD_INVALID_TOPOLOGY = 5008

    # 6xxx client
    CLIENT_ROUTING_UNAVAILABLE = 6000
    CLIENT_NO_SERVING_REPLICA = 6001
    CLIENT_BAD_HANDLE = 6002
    CLIENT_CLOSED = 6003
    CLIENT_READ_ONLY = 6004
    CLIENT_MOUNT_FAILED = 6005


_E = _errno
# Code -> (retryable, errno, one-line summary). Every Code member must appear exactly once.
REGISTRY: dict[Code, CodeInfo] = {
    code: CodeInfo(retryable, err, summary)
    for code, retryable, err, summary in [
        (Code.OK, False, 0, "Success."),
        (Code.INTERNAL, False, _E.EIO, "An unexpected internal failure; the log has the details."),
        (Code.INVALID_ARG, False, _E.EINVAL, "An argument is out of range or malformed; nothing changed."),
        (Code.NOT_IMPLEMENTED, False, _E.ENOSYS, "The operation is not implemented by this component."),
        (Code.TIMEOUT, True, _E.ETIMEDOUT, "An operation did not finish in time."),
        (Code.CANCELLED, False, _E.EINTR, "The operation was cancelled."),
        (Code.CONFIG_INVALID, False, _E.EINVAL, "A configuration file has an unknown key or a wrong type."),
        (Code.PERMISSION_DENIED, False, _E.EACCES, "The caller lacks the permission for this operation."),
        (Code.UNAUTHENTICATED, False, _E.EACCES, "The caller presented no valid credentials."),
        (Code.NOT_FOUND, False, _E.ENOENT, "The named object does not exist."),
        (Code.ALREADY_EXISTS, False, _E.EEXIST, "The named object already exists."),
        (
            Code.RESOURCE_EXHAUSTED,
            True,
            _E.EAGAIN,
            "A limit (memory, queue, handles) was hit; retry later.",
        ),
        (Code.IO_ERROR, False, _E.EIO, "A local I/O operation failed."),
        (Code.KV_CONFLICT, True, _E.EAGAIN, "A transaction conflicted with a concurrent one; retry it."),
        (
            Code.KV_RETRY_LIMIT,
            False,
            _E.EAGAIN,
            "A transaction was retried the maximum number of times and gave up.",
        ),
        (Code.KV_KEY_TOO_LARGE, False, _E.EINVAL, "A key is longer than the engine's maximum."),
        (Code.KV_VALUE_TOO_LARGE, False, _E.EFBIG, "A value is longer than the engine's maximum."),
        (Code.KV_TXN_TOO_OLD, True, _E.EAGAIN, "The transaction ran too long and must be retried."),
        (Code.KV_UNAVAILABLE, True, _E.EIO, "The KV engine cannot be reached."),
        (Code.KV_TXN_CLOSED, False, _E.EINVAL, "The transaction was already committed or rolled back."),
        (
            Code.KV_COMMIT_UNKNOWN,
            True,
            _E.EIO,
            "The commit result is unknown (connection lost); operations must be idempotent to retry.",
        ),
        (Code.KV_TXN_TOO_LARGE, False, _E.EFBIG, "A transaction wrote more than the engine's maximum."),
        (Code.KV_READ_ONLY, False, _E.EROFS, "A write was attempted in a read-only transaction."),
        (Code.RPC_CONNECT_FAILED, True, _E.EHOSTUNREACH, "A connection to the peer could not be made."),
        (Code.RPC_CONNECTION_CLOSED, True, _E.ECONNRESET, "The connection closed before the reply came."),
        (Code.RPC_DEADLINE_EXCEEDED, True, _E.ETIMEDOUT, "The call's deadline passed before a reply came."),
        (Code.RPC_BAD_FRAME, False, _E.EPROTO, "A frame was malformed (magic, version, flags or lengths)."),
        (Code.RPC_BAD_CHECKSUM, False, _E.EPROTO, "A frame's CRC32C did not match its contents."),
        (Code.RPC_FRAME_TOO_LARGE, False, _E.EMSGSIZE, "A frame is larger than the configured maximum."),
        (Code.RPC_UNKNOWN_SERVICE, False, _E.ENOSYS, "No service with that id is served here."),
        (Code.RPC_UNKNOWN_METHOD, False, _E.ENOSYS, "The service has no method with that id."),
        (Code.RPC_INVALID_BODY, False, _E.EINVAL, "A request or response body failed validation."),
        (Code.RPC_AUTH_FAILED, False, _E.EACCES, "The peer failed authentication."),
        (Code.RPC_VERSION_MISMATCH, False, _E.EPROTO, "The peer speaks another protocol version."),
        (Code.RPC_SERVER_OVERLOADED, True, _E.EAGAIN, "The server has too many requests in flight."),
        (Code.META_NOT_FOUND, False, _E.ENOENT, "No such file or directory."),
        (Code.META_EXISTS, False, _E.EEXIST, "The entry already exists."),
        (Code.META_NOT_DIRECTORY, False, _E.ENOTDIR, "A path component is not a directory."),
        (Code.META_IS_DIRECTORY, False, _E.EISDIR, "The operation is not allowed on a directory."),
        (Code.META_NOT_EMPTY, False, _E.ENOTEMPTY, "The directory is not empty."),
        (Code.META_NAME_TOO_LONG, False, _E.ENAMETOOLONG, "A name is longer than 255 bytes."),
        (Code.META_PATH_TOO_LONG, False, _E.ENAMETOOLONG, "A path is longer than 4096 bytes."),
        (Code.META_INVALID_NAME, False, _E.EINVAL, "A name is empty, '.', '..', or holds '/' or NUL."),
        (Code.META_PERMISSION_DENIED, False, _E.EACCES, "Permission denied by mode, owner or sticky bit."),
        (Code.META_NOT_PERMITTED, False, _E.EPERM, "The operation is not permitted for this user."),
        (Code.META_CROSS_DEVICE, False, _E.EXDEV, "The operation would cross file systems."),
        (Code.META_TOO_MANY_LINKS, False, _E.EMLINK, "The inode has the maximum number of links."),
        (Code.META_LOOP, False, _E.ELOOP, "Too many symbolic links, or a directory moved under itself."),
        (Code.META_BUSY, True, _E.EBUSY, "The inode is busy; retry later."),
        (Code.META_NO_SPACE, False, _E.ENOSPC, "The file system has no space or inodes left."),
        (Code.META_BAD_LAYOUT, False, _E.EINVAL, "A file layout is invalid (chunk size, stripe, table)."),
        (Code.META_STALE_SESSION, False, _E.ESTALE, "The file session is no longer valid."),
        (Code.META_NO_XATTR, False, _E.ENODATA, "The extended attribute does not exist."),
        (Code.META_XATTR_TOO_LARGE, False, _E.E2BIG, "An extended attribute value is over 64 KiB."),
        (
            Code.META_XATTR_NAME_INVALID,
            False,
            _E.ERANGE,
            "An extended attribute name is empty, over 255 bytes, or has no namespace prefix.",
        ),
        (
            Code.META_XATTR_UNSUPPORTED,
            False,
            _E.EOPNOTSUPP,
            "Extended attributes of this namespace (system.*, unknown) are not supported.",
        ),
        (Code.STORAGE_CHUNK_NOT_FOUND, False, _E.ENOENT, "The chunk does not exist on this target."),
        (
            Code.STORAGE_CHUNK_NOT_COMMITTED,
            True,
            _E.EAGAIN,
            "The chunk has an uncommitted update; retry or ask the tail.",
        ),
        (
            Code.STORAGE_STALE_CHAIN_VERSION,
            True,
            _E.EAGAIN,
            "The request's chain version is stale; refresh routing info and retry.",
        ),
        (Code.STORAGE_TARGET_NOT_FOUND, False, _E.ENODEV, "No such storage target on this node."),
        (Code.STORAGE_TARGET_OFFLINE, True, _E.EIO, "The storage target is offline."),
        (Code.STORAGE_NOT_HEAD, True, _E.EAGAIN, "A write reached a target that is not the chain head."),
        (Code.STORAGE_CHECKSUM_MISMATCH, True, _E.EIO, "Data did not match its CRC32C."),
        (Code.STORAGE_NO_SPACE, False, _E.ENOSPC, "The storage target is full."),
        (Code.STORAGE_CHUNK_LOCKED, True, _E.EAGAIN, "Another update holds the chunk lock."),
        (Code.STORAGE_BAD_OFFSET, False, _E.EINVAL, "An offset or length lies outside the chunk."),
        (Code.STORAGE_IO_ERROR, True, _E.EIO, "The target's disk failed an I/O."),
        (Code.STORAGE_SYNCING, True, _E.EAGAIN, "The target is being resynchronised."),
        (Code.STORAGE_STALE_UPDATE, False, _E.EIO, "An update is older than the chunk's committed version."),
        (Code.MGMTD_NOT_PRIMARY, True, _E.EAGAIN, "This mgmtd is not primary; the reply names the primary."),
        (Code.MGMTD_NODE_NOT_FOUND, False, _E.ENODEV, "No such node is registered."),
        (Code.MGMTD_CHAIN_NOT_FOUND, False, _E.ENODEV, "No such chain."),
        (Code.MGMTD_TABLE_NOT_FOUND, False, _E.ENODEV, "No such chain table or version."),
        (Code.MGMTD_STALE_ROUTING, True, _E.EAGAIN, "The caller's routing info is stale; refresh it."),
        (Code.MGMTD_BAD_HEARTBEAT, False, _E.EINVAL, "A heartbeat was refused (unknown node or stale)."),
        (Code.MGMTD_LEASE_LOST, True, _E.EAGAIN, "The primary lease was lost during the operation."),
        (Code.MGMTD_TARGET_NOT_FOUND, False, _E.ENODEV, "No such storage target."),
        (Code.MGMTD_INVALID_TOPOLOGY, False, _E.EINVAL, "The requested chains or tables are not possible."),
        (
            Code.CLIENT_ROUTING_UNAVAILABLE,
            True,
            _E.EIO,
            "No mgmtd answered; routing info is unavailable.",
        ),
        (Code.CLIENT_NO_SERVING_REPLICA, True, _E.EIO, "No replica of the chain is serving."),
        (Code.CLIENT_BAD_HANDLE, False, _E.EBADF, "The file handle is not open."),
        (Code.CLIENT_CLOSED, False, _E.EBADF, "The client was closed."),
        (Code.CLIENT_READ_ONLY, False, _E.EROFS, "The file system is mounted read-only."),
        (Code.CLIENT_MOUNT_FAILED, False, _E.EIO, "The FUSE mount could not be set up."),
    ]
}

# Codes that were once used and must never be given to a new meaning.
RETIRED_CODES: dict[int, str] = {}


class ThreeFSError(Exception):
    """An error with a registered code. Crosses the wire as ``(code, message)``.

    ``code`` may be a ``Code`` or its integer value; an integer that is not registered (a newer
    peer) becomes ``Code.INTERNAL`` with the number kept in the message, so the caller never
    sees a code it cannot interpret.
    """

    def __init__(self, code: Code | int, message: str = "") -> None:
        try:
            resolved = Code(code)
        except ValueError:
            message = f"unknown error code {int(code)}: {message}"
            resolved = Code.INTERNAL
        self.code: Code = resolved
        self.message: str = message or REGISTRY[resolved].summary
        super().__init__(self.code, self.message)

    @property
    def retryable(self) -> bool:
        """Whether the operation may succeed if tried again unchanged."""
        return REGISTRY[self.code].retryable

    @property
    def errno(self) -> int:
        """The errno a FUSE mount answers for this error."""
        return REGISTRY[self.code].errno

    def __str__(self) -> str:
        return f"{self.code.name}({int(self.code)}): {self.message}"

    def __repr__(self) -> str:
        return f"ThreeFSError({self.code.name}, {self.message!r})"

    def __reduce__(self):  # keeps the error picklable across processes
        return (ThreeFSError, (int(self.code), self.message))


def is_retryable(exc: BaseException) -> bool:
    """True for a ``ThreeFSError`` whose code is retryable; False for anything else."""
    return isinstance(exc, ThreeFSError) and exc.retryable


def subsystem_of(code: Code) -> str:
    """The name of the range a code belongs to (``"kv"``, ``"rpc"``, ...)."""
    for name, codes in RANGES.items():
        if int(code) in codes:
            return name
    raise ValueError(f"code {int(code)} lies in no range")


def render_markdown() -> str:
    """The reference page ``docs/errors.md``, generated from the registry."""
    lines = [
        "# Error codes",
        "",
        "Generated by `python -m threefs.errors_doc --write docs/errors.md` from `threefs/errors.py`;",
        "do not edit by hand. Every `ThreeFSError` carries one of these codes across the wire; the",
        "FUSE mount answers the errno column, the CLI exits with a non-zero status and prints the",
        "name. *Retryable* errors may succeed if the same request is sent again (the client library",
        "retries them with backoff); the others will fail again until something changes.",
        "",
    ]
    for name, codes in RANGES.items():
        members = [c for c in Code if int(c) in codes]
        lines += [
            f"## {name} ({codes.start}-{codes.stop - 1})",
            "",
            "| code | name | retryable | errno | meaning |",
            "|---:|---|:---:|---|---|",
        ]
        for code in members:
            info = REGISTRY[code]
            errno_name = _errno.errorcode.get(info.errno, "0")
            retry = "yes" if info.retryable else "no"
            lines.append(f"| {int(code)} | `{code.name}` | {retry} | {errno_name} | {info.summary} |")
        lines.append("")
    lines += ["## Retired codes", ""]
    if RETIRED_CODES:
        lines += [f"- {num}: {why}" for num, why in sorted(RETIRED_CODES.items())]
    else:
        lines.append("None yet.")
    lines.append("")
    return "\n".join(lines)
