"""Inodes as the kernel sees them, and who is asking.

- ``to_attributes``: a meta ``Inode`` as ``pyfuse3.EntryAttributes`` (inode numbers are meta's
  ids: both roots are 1), with the mount's timeouts and, for a file this mount is writing, the
  length it knows locally.
- ``CallerCache`` / ``caller_of``: the ``Caller`` meta checks permissions with, from the
  request's uid, gid and the supplementary groups of its process (``/proc/<pid>/status``). uid 0
  on the mount is admin root: the daemon holds the cluster secret and acts for the machine's
  root. Reading ``/proc`` costs about a tenth of a request's CPU, so ``CallerCache`` keeps the
  groups of a (pid, uid, gid) for ``groups_timeout`` seconds (GlusterFS's ``gid-timeout`` does
  the same): a process that changes its supplementary groups without changing uid or gid is
  judged with its old groups for at most that long.
- ``may``: POSIX permission bits for ``access(2)``, with meta's rules (root passes every check
  except execute on a non-directory without any x bit).
"""

from __future__ import annotations

import stat
import time

import pyfuse3

from threefs.wire.meta import Caller, Inode, InodeType

__all__ = ["TYPE_BITS", "CallerCache", "caller_of", "may", "to_attributes"]

TYPE_BITS = {
    InodeType.FILE: stat.S_IFREG,
    InodeType.DIRECTORY: stat.S_IFDIR,
    InodeType.SYMLINK: stat.S_IFLNK,
    InodeType.FIFO: stat.S_IFIFO,
    InodeType.SOCKET: stat.S_IFSOCK,
    InodeType.CHAR_DEVICE: stat.S_IFCHR,
    InodeType.BLOCK_DEVICE: stat.S_IFBLK,
}
_BLOCK = 4096
_MAX_BLKSIZE = 1 << 20


def to_attributes(
    inode: Inode, *, entry_timeout: float, attr_timeout: float, length: int | None = None
) -> pyfuse3.EntryAttributes:
    """``inode`` for the kernel; ``length`` replaces the size meta knows (a file being written)."""
    attrs = pyfuse3.EntryAttributes()
    attrs.st_ino = inode.id
    attrs.generation = 0
    attrs.entry_timeout = entry_timeout
    attrs.attr_timeout = attr_timeout
    attrs.st_mode = TYPE_BITS[inode.type] | inode.mode
    attrs.st_nlink = inode.nlink
    attrs.st_uid = inode.uid
    attrs.st_gid = inode.gid
    attrs.st_rdev = inode.rdev
    if inode.type == InodeType.FILE:
        size = inode.length if length is None else length
        # st_blksize is the I/O size stdio and cp use: large writes reach the write buffer whole
        chunk = inode.layout.chunk_size if inode.layout is not None else _BLOCK
        attrs.st_blksize = max(_BLOCK, min(chunk, _MAX_BLKSIZE))
    elif inode.type == InodeType.SYMLINK:
        size = len(inode.target)
        attrs.st_blksize = _BLOCK
    else:
        size = 0 if inode.type != InodeType.DIRECTORY else _BLOCK
        attrs.st_blksize = _BLOCK
    attrs.st_size = size
    attrs.st_blocks = (size + 511) // 512
    attrs.st_atime_ns = inode.atime_ns
    attrs.st_mtime_ns = inode.mtime_ns
    attrs.st_ctime_ns = inode.ctime_ns
    return attrs


def caller_of(ctx: pyfuse3.RequestContext) -> Caller:
    """The identity of the process that made the request (see the module docstring)."""
    try:
        groups = sorted(pyfuse3.get_sup_groups(ctx.pid))
    except (OSError, RuntimeError, ValueError):
        groups = []  # the process already exited: its uid and gid still count
    return Caller(uid=ctx.uid, gid=ctx.gid, groups=groups, admin=ctx.uid == 0)


class CallerCache:
    """``caller_of`` with each (pid, uid, gid)'s answer kept for ``timeout`` seconds (0: never
    kept). Holds at most ``limit`` entries; when full, it starts over."""

    def __init__(self, timeout: float, limit: int = 4096) -> None:
        self.timeout = timeout
        self.limit = limit
        self._entries: dict[tuple[int, int, int], tuple[float, Caller]] = {}

    def __call__(self, ctx: pyfuse3.RequestContext) -> Caller:
        if self.timeout <= 0:
            return caller_of(ctx)
        key = (ctx.pid, ctx.uid, ctx.gid)
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        caller = caller_of(ctx)
        if len(self._entries) >= self.limit:
            self._entries.clear()
        self._entries[key] = (now + self.timeout, caller)
        return caller


def may(inode: Inode, caller: Caller, want: int) -> bool:
    """Whether ``caller`` has every access in ``want`` (``os.R_OK | os.W_OK | os.X_OK`` bits)."""
    if caller.uid == 0 and caller.admin:
        return not (want & 1 and inode.type != InodeType.DIRECTORY and not inode.mode & 0o111)
    if caller.uid == inode.uid:
        bits = (inode.mode >> 6) & 7
    elif caller.gid == inode.gid or inode.gid in caller.groups:
        bits = (inode.mode >> 3) & 7
    else:
        bits = inode.mode & 7
    return bits & want == want
