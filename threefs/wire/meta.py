"""The meta service (id 3): the POSIX namespace (inodes, directory entries, file sessions, GC).

Meta servers are stateless: every operation is one serializable KV transaction (DESIGN.md
section 8), so any number of them serve one cluster. Structs persisted in the KV engine (``Inode``,
``DirEntry``, ``FileSession``, ``GcJob``) are the same structs that cross the wire. Add fields only
at the end and with a default; method ids are never reused.

Conventions:

- Names and paths are ``bytes`` (POSIX names are bytes; the client converts ``str`` with
  ``os.fsencode``). A component is at most 255 bytes (META_NAME_TOO_LONG), a path at most 4096
  (META_PATH_TOO_LONG); a name with ``/`` or NUL, or an empty one, is META_INVALID_NAME; ``.`` and
  ``..`` are refused where an entry would be created or removed (META_INVALID_NAME, or META_EXISTS
  where POSIX says EEXIST, as for ``mkdir .``).
- ``PathAt(parent, path)`` names an object: ``path`` relative to directory inode ``parent``
  (``ROOT_INODE`` when 0 is not given), or absolute when it starts with ``/``; an empty path names
  ``parent`` itself. Intermediate symlinks are followed (at most ``MAX_SYMLINK_FOLLOWS``,
  META_LOOP beyond); the last component is followed only where a request says ``follow``.
- ``Caller`` is the identity the permission checks use (uid, gid, supplementary groups). On a
  cluster-secret connection it is taken as given; on a user-token connection it must be one the
  user may act as, and ``admin`` only from an admin user (docs/security.md). uid 0 is root only
  when ``admin`` is set.
- Mutating requests carry ``RequestId`` (client id, sequence): meta records the first result
  with the operation in the same transaction, and a retry of the same id gets that result.
- An empty path names ``parent`` itself whatever its type (inode addressing, as the FUSE mount
  uses: a non-directory inode is reached by id, without a path search); a symlink reached so is
  never followed.
- Times are nanoseconds since the epoch (``TimeSpec`` on setattr: a value, "now", or unchanged).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated

import msgspec

from threefs.layout import Layout
from threefs.wire.common import MethodSpec, ServiceSpec, paired_method
from threefs.wire.ids import ServiceId

U32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
U64 = Annotated[int, msgspec.Meta(ge=0)]
I64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
Mode = Annotated[int, msgspec.Meta(ge=0, le=0o7777)]  # permission bits + setuid/setgid/sticky
Name = Annotated[bytes, msgspec.Meta(max_length=4096)]  # checked for real by the op (255 / 4096)
Path = Annotated[bytes, msgspec.Meta(max_length=8192)]  # likewise; longer is refused at decode

ROOT_INODE = 1
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
MAX_SYMLINK_FOLLOWS = 40
MAX_LINKS = 65000  # hard links per file (META_TOO_MANY_LINKS beyond)
MAX_LIST_LIMIT = 10_000


class InodeType(IntEnum):
    FILE = 1
    DIRECTORY = 2
    SYMLINK = 3
    FIFO = 4
    SOCKET = 5
    CHAR_DEVICE = 6
    BLOCK_DEVICE = 7


class Caller(msgspec.Struct, frozen=True, kw_only=True):
    """Who asks: POSIX identity for permission checks."""

    uid: U32 = 0
    gid: U32 = 0
    groups: list[U32] = []
    admin: bool = False


class RequestId(msgspec.Struct, frozen=True, array_like=True):
    """Idempotency key of a mutating request: 16 random bytes per client process and a number
    that the client never reuses (a retry reuses it)."""

    client_id: Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
    seq: U64


class PathAt(msgspec.Struct, frozen=True, array_like=True):
    """``path`` relative to directory ``parent`` (absolute when it starts with ``/``)."""

    parent: U64 = ROOT_INODE
    path: Path = b""


class Inode(msgspec.Struct, frozen=True, kw_only=True):
    """An inode as stored (``INOD`` + id) and returned. ``length`` is the file length meta knows
    (see LengthPolicy in docs/meta.md); ``layout`` is set for files; ``dir_layout`` is a
    directory's default layout for new files (None: inherit from the parent at create time);
    ``parent``/``name`` locate a directory (for get-real-path and the subtree check of rename);
    ``target`` is a symlink's target; ``rdev`` a device node's number."""

    id: U64
    type: InodeType
    mode: Mode
    uid: U32
    gid: U32
    nlink: U32
    atime_ns: I64
    mtime_ns: I64
    ctime_ns: I64
    length: U64 = 0
    truncate_version: U64 = 0
    layout: Layout | None = None
    dir_layout: Layout | None = None
    parent: U64 = 0
    name: Name = b""
    target: Path = b""
    rdev: U64 = 0


class DirEntry(msgspec.Struct, frozen=True, array_like=True):
    """A directory entry as stored (``DENT`` + parent + name -> this)."""

    inode: U64
    type: InodeType


class FileSession(msgspec.Struct, frozen=True, kw_only=True):
    """An open-for-write session (``INOS`` + inode + session id): which client holds it, so the
    sessions of a client that stopped heartbeating to mgmtd can be pruned."""

    session_id: Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
    inode: U64
    client_id: Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
    client_node: U32 = 0  # the client's node id at mgmtd (0: not registered)
    created_ns: I64 = 0


class GcJob(msgspec.Struct, frozen=True, kw_only=True):
    """A removed inode waiting for its chunks to be deleted (``GCQU`` + due time + id)."""

    inode: Inode
    queued_ns: I64
    reason: str = ""


class TimeSpec(msgspec.Struct, frozen=True, array_like=True):
    """A time to set: ``now`` (the server's clock) or ``ns``."""

    ns: I64 = 0
    now: bool = False


# ---------------------------------------------------------------------------------------- methods


class StatFsRequest(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller = Caller()


class StatFsResponse(msgspec.Struct, frozen=True, kw_only=True):
    """Capacity from storage (space of every target), inode counts from meta's allocator."""

    capacity_bytes: U64
    used_bytes: U64
    free_bytes: U64
    inodes_used: U64
    block_size: U32 = 4096
    max_name_bytes: U32 = MAX_NAME_BYTES


class StatRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Stat what ``at`` names (``follow``: a final symlink is followed)."""

    at: PathAt
    follow: bool = True
    caller: Caller = Caller()


class StatResponse(msgspec.Struct, frozen=True, kw_only=True):
    inode: Inode


class LookupRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Entry ``name`` of directory ``parent`` (FUSE lookup: one component, never followed)."""

    parent: U64
    name: Name
    caller: Caller = Caller()


class LookupResponse(msgspec.Struct, frozen=True, kw_only=True):
    inode: Inode


class BatchStatRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Stat many inodes by id, or many paths (each a PathAt, followed), in one transaction."""

    inodes: list[U64] = []
    paths: list[PathAt] = []
    caller: Caller = Caller()


class BatchStatResponse(msgspec.Struct, frozen=True, kw_only=True):
    """One result per id, then one per path, in order: the inode, or None with the error code
    in ``codes`` at the same index (0 when found)."""

    inodes: list[Inode | None]
    codes: list[int]


class MknodRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Create a FILE, FIFO, SOCKET or device node (DIRECTORY/SYMLINK have their own calls)."""

    at: PathAt
    type: InodeType
    mode: Mode
    rdev: U64 = 0
    request: RequestId
    caller: Caller = Caller()


class MknodResponse(msgspec.Struct, frozen=True, kw_only=True):
    inode: Inode


class OpenFlags(IntEnum):
    """Bits of ``OpenRequest.flags`` (the client maps ``os.O_*`` to these)."""

    READ = 1
    WRITE = 2
    CREATE = 4
    EXCLUSIVE = 8
    TRUNCATE = 16
    APPEND = 32


class OpenRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Open (and with CREATE, create) a file. WRITE opens a file session (returned); TRUNCATE
    sets the length to 0 (the chunks are removed by meta before it answers); APPEND is the
    client's business (it writes at the length) and is only checked for permission here. A
    directory opened for WRITE is META_IS_DIRECTORY; ``follow``: a final symlink is followed
    (O_NOFOLLOW: not, and opening a symlink is META_LOOP)."""

    at: PathAt
    flags: U32
    mode: Mode = 0o644
    follow: bool = True
    client_node: U32 = 0
    request: RequestId
    caller: Caller = Caller()


class OpenResponse(msgspec.Struct, frozen=True, kw_only=True):
    inode: Inode
    created: bool
    session_id: bytes = b""  # empty when not opened for writing


class MkdirRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Create a directory; ``recursive`` creates missing parents too and accepts an existing
    directory (mkdir -p)."""

    at: PathAt
    mode: Mode = 0o755
    recursive: bool = False
    request: RequestId
    caller: Caller = Caller()


class MkdirResponse(msgspec.Struct, frozen=True, kw_only=True):
    inode: Inode


class SymlinkRequest(msgspec.Struct, frozen=True, kw_only=True):
    at: PathAt
    target: Path
    request: RequestId
    caller: Caller = Caller()


class SymlinkResponse(msgspec.Struct, frozen=True, kw_only=True):
    inode: Inode


class ReadlinkRequest(msgspec.Struct, frozen=True, kw_only=True):
    at: PathAt
    caller: Caller = Caller()


class ReadlinkResponse(msgspec.Struct, frozen=True, kw_only=True):
    target: bytes


class HardLinkRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A new name ``new`` for the file ``old`` (not followed; files and other non-directories)."""

    old: PathAt
    new: PathAt
    request: RequestId
    caller: Caller = Caller()


class HardLinkResponse(msgspec.Struct, frozen=True, kw_only=True):
    inode: Inode


class RemoveRequest(msgspec.Struct, frozen=True, kw_only=True):
    """unlink (``directory`` False: the entry must not be a directory), rmdir (``directory``
    True: it must be an empty directory), or, with ``recursive``, a whole tree (rm -r) moved to
    GC in this one transaction (chunks are removed in the background)."""

    at: PathAt
    directory: bool = False
    recursive: bool = False
    request: RequestId
    caller: Caller = Caller()


class RemoveResponse(msgspec.Struct, frozen=True, kw_only=True):
    """How many inodes went to the GC queue (0 while other links or write sessions remain)."""

    queued_for_gc: U64 = 0


class RenameFlags(IntEnum):
    NOREPLACE = 1
    EXCHANGE = 2


class RenameRequest(msgspec.Struct, frozen=True, kw_only=True):
    src: PathAt
    dst: PathAt
    flags: U32 = 0
    request: RequestId
    caller: Caller = Caller()


class RenameResponse(msgspec.Struct, frozen=True, kw_only=True):
    """``replaced``: the inode that ``dst`` named before (None when it named nothing)."""

    inode: Inode
    replaced: Inode | None = None


class ListRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A page of directory ``at``: entries with names after ``after`` (byte order), at most
    ``limit`` (1..MAX_LIST_LIMIT); ``with_attrs`` adds each entry's inode."""

    at: PathAt
    after: Name = b""
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIST_LIMIT)] = 1000
    with_attrs: bool = False
    caller: Caller = Caller()


class ListEntry(msgspec.Struct, frozen=True, array_like=True):
    name: bytes
    inode: U64
    type: InodeType
    attrs: Inode | None = None


class ListResponse(msgspec.Struct, frozen=True, kw_only=True):
    entries: list[ListEntry]
    more: bool


class SetAttrRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Change what is given (None: unchanged). ``length`` truncates or extends a file (meta
    removes/truncates the chunks on storage first). Owner/mode changes follow POSIX: only the
    owner (or admin root) changes mode; only admin root changes the owner; a group change needs
    membership; setgid is cleared as POSIX says."""

    at: PathAt
    follow: bool = True
    mode: Mode | None = None
    uid: U32 | None = None
    gid: U32 | None = None
    atime: TimeSpec | None = None
    mtime: TimeSpec | None = None
    length: U64 | None = None
    request: RequestId
    caller: Caller = Caller()


class SetAttrResponse(msgspec.Struct, frozen=True, kw_only=True):
    inode: Inode


class SyncRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A writer reports on inode ``inode``: ``length_hint`` (the end of its writes; the length
    becomes the maximum since the last truncate), whether it wrote (mtime/ctime become now),
    and with ``close`` its session ends (``session_id``)."""

    inode: U64
    session_id: bytes = b""
    length_hint: U64 | None = None
    wrote: bool = False
    close: bool = False
    request: RequestId
    caller: Caller = Caller()


class SyncResponse(msgspec.Struct, frozen=True, kw_only=True):
    inode: Inode


class GetRealPathRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The absolute path of what ``at`` names (symlinks resolved), from its directory chain."""

    at: PathAt
    caller: Caller = Caller()


class GetRealPathResponse(msgspec.Struct, frozen=True, kw_only=True):
    path: bytes


class SetLayoutRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Set directory ``at``'s default layout for files created in it (and in new subdirectories,
    which copy it). The chain table must exist at mgmtd (META_BAD_LAYOUT otherwise)."""

    at: PathAt
    layout: Layout
    request: RequestId
    caller: Caller = Caller()


class SetLayoutResponse(msgspec.Struct, frozen=True, kw_only=True):
    inode: Inode


class GcListRequest(msgspec.Struct, frozen=True, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIST_LIMIT)] = 1000
    caller: Caller = Caller()


class GcListResponse(msgspec.Struct, frozen=True, kw_only=True):
    jobs: list[GcJob]
    due_ns: list[I64]


class FsckRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Check the whole namespace; ``repair`` fixes what it finds (orphan inodes go to GC,
    dangling entries are removed, wrong nlink set right)."""

    repair: bool = False
    caller: Caller = Caller()


class FsckProblem(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # "orphan_inode", "dangling_entry", "wrong_nlink", "bad_parent", ...
    inode: U64 = 0
    parent: U64 = 0
    name: bytes = b""
    detail: str = ""
    repaired: bool = False


class FsckResponse(msgspec.Struct, frozen=True, kw_only=True):
    inodes: U64
    entries: U64
    problems: list[FsckProblem]


# ------------------------------------------------------------------------ extended attributes

MAX_XATTR_NAME_BYTES = 255  # Linux XATTR_NAME_MAX (META_XATTR_NAME_INVALID beyond)
MAX_XATTR_VALUE_BYTES = 64 << 10  # Linux XATTR_SIZE_MAX (META_XATTR_TOO_LARGE beyond)
MAX_XATTR_LIST_BYTES = 64 << 10  # Linux XATTR_LIST_MAX: names + NULs of one inode (META_NO_SPACE)

XattrName = Annotated[bytes, msgspec.Meta(max_length=4096)]  # checked for real by the op (255)
XattrValue = Annotated[bytes, msgspec.Meta(max_length=1 << 20)]  # likewise (64 KiB)


class XattrFlags(IntEnum):
    """Bits of ``SetXattrRequest.flags`` (Linux XATTR_CREATE / XATTR_REPLACE)."""

    CREATE = 1  # fail with META_EXISTS when the attribute exists
    REPLACE = 2  # fail with META_NO_XATTR when it does not


class GetXattrRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The value of extended attribute ``name`` (``namespace.name``) of what ``at`` names."""

    at: PathAt
    name: XattrName
    follow: bool = True
    caller: Caller = Caller()


class GetXattrResponse(msgspec.Struct, frozen=True, kw_only=True):
    value: bytes


class SetXattrRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Set extended attribute ``name`` to ``value`` (``flags``: ``XattrFlags``); ctime becomes now."""

    at: PathAt
    name: XattrName
    value: XattrValue = b""
    flags: U32 = 0
    follow: bool = True
    request: RequestId
    caller: Caller = Caller()


class SetXattrResponse(msgspec.Struct, frozen=True, kw_only=True):
    inode: Inode


class ListXattrRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The names of the extended attributes of what ``at`` names that the caller may see."""

    at: PathAt
    follow: bool = True
    caller: Caller = Caller()


class ListXattrResponse(msgspec.Struct, frozen=True, kw_only=True):
    names: list[bytes]


class RemoveXattrRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Remove extended attribute ``name`` (META_NO_XATTR when absent); ctime becomes now."""

    at: PathAt
    name: XattrName
    follow: bool = True
    request: RequestId
    caller: Caller = Caller()


class RemoveXattrResponse(msgspec.Struct, frozen=True, kw_only=True):
    inode: Inode


def _method(method_id: int, name: str) -> MethodSpec:
    return paired_method(ServiceId.META, "Meta", method_id, name, globals())


STAT_FS = _method(1, "StatFs")
STAT = _method(2, "Stat")
LOOKUP = _method(3, "Lookup")
BATCH_STAT = _method(4, "BatchStat")
MKNOD = _method(5, "Mknod")
OPEN = _method(6, "Open")
MKDIR = _method(7, "Mkdir")
SYMLINK = _method(8, "Symlink")
READLINK = _method(9, "Readlink")
HARD_LINK = _method(10, "HardLink")
REMOVE = _method(11, "Remove")
RENAME = _method(12, "Rename")
LIST = _method(13, "List")
SET_ATTR = _method(14, "SetAttr")
SYNC = _method(15, "Sync")
GET_REAL_PATH = _method(16, "GetRealPath")
SET_LAYOUT = _method(17, "SetLayout")
GC_LIST = _method(18, "GcList")
FSCK = _method(19, "Fsck")
GET_XATTR = _method(20, "GetXattr")
SET_XATTR = _method(21, "SetXattr")
LIST_XATTR = _method(22, "ListXattr")
REMOVE_XATTR = _method(23, "RemoveXattr")

RETIRED_METHOD_IDS: dict[int, str] = {}

META_SERVICE = ServiceSpec(
    ServiceId.META,
    "Meta",
    (
        STAT_FS,
        STAT,
        LOOKUP,
        BATCH_STAT,
        MKNOD,
        OPEN,
        MKDIR,
        SYMLINK,
        READLINK,
        HARD_LINK,
        REMOVE,
        RENAME,
        LIST,
        SET_ATTR,
        SYNC,
        GET_REAL_PATH,
        SET_LAYOUT,
        GC_LIST,
        FSCK,
        GET_XATTR,
        SET_XATTR,
        LIST_XATTR,
        REMOVE_XATTR,
    ),
    RETIRED_METHOD_IDS,
)
