"""``ThreeFSOperations``: the pyfuse3 request handlers over ``MetaClient`` and ``StorageClient``.

Thin by design: each handler turns its arguments into one or two meta calls (or chunk I/O
through ``files.OpenFile``) and its answer into ``EntryAttributes``. Every handler is wrapped
by ``fuse_handler``, the one place where errors become errno. Objects are addressed by inode id
(``PathAt(inode, b"")``) or by directory and name (``PathAt(parent, name)``); the kernel's
inode numbers are meta's ids. The caller of each request is passed to meta, which checks
permissions (the mount does not use ``default_permissions``); handlers without a request
context (read, write, flush, release, fsync, readdir) act as the caller that opened the handle.
The daemon keeps no per-inode state besides open files, so ``forget`` has nothing to do.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Sequence

import pyfuse3

from client.fuse.attrs import CallerCache, may, to_attributes
from client.fuse.files import DirHandle, Handle, OpenFiles
from client.fuse.handlers import FAULT_ENV, fuse_handler
from client.fuse.options import MountOptions
from client.meta import MetaClient
from client.storage import StorageClient
from threefs.errors import Code, ThreeFSError
from threefs.wire import meta as wire
from threefs.wire.meta import Caller, Inode, InodeType, OpenFlags, PathAt, TimeSpec

__all__ = ["ThreeFSOperations"]

log = logging.getLogger("client.fuse")

_MKNOD_TYPES = {
    stat.S_IFREG: InodeType.FILE,
    stat.S_IFIFO: InodeType.FIFO,
    stat.S_IFSOCK: InodeType.SOCKET,
    stat.S_IFCHR: InodeType.CHAR_DEVICE,
    stat.S_IFBLK: InodeType.BLOCK_DEVICE,
}
_LIST_PAGE = 1000
_NOW_SLACK_NS = 2 * 10**9  # a time this close to our clock may be pyfuse3's rendering of UTIME_NOW


def _at(inode: int, name: bytes = b"") -> PathAt:
    return PathAt(inode, name)


def _open_flags(flags: int) -> tuple[int, bool]:
    """``os.O_*`` as ``wire.OpenFlags`` bits, and whether the open writes."""
    access = flags & os.O_ACCMODE
    bits = 0
    if access in (os.O_RDONLY, os.O_RDWR):
        bits |= OpenFlags.READ
    writable = access in (os.O_WRONLY, os.O_RDWR)
    if writable:
        bits |= OpenFlags.WRITE
    if flags & os.O_TRUNC:
        bits |= OpenFlags.TRUNCATE
    if flags & os.O_APPEND:
        bits |= OpenFlags.APPEND
    return bits, writable


class ThreeFSOperations(pyfuse3.Operations):
    """The file system (see the module docstring). ``meta`` and ``storage`` are borrowed."""

    def __init__(self, meta: MetaClient, storage: StorageClient, options: MountOptions) -> None:
        super().__init__()
        self.meta = meta
        self.storage = storage
        self.options = options
        self.enable_writeback_cache = options.writeback
        self.files = OpenFiles(storage, options.write_buffer, options.readahead, options.write_behind)
        self.fault_name = os.fsencode(os.environ.get(FAULT_ENV, "")) or None
        self.caller_of = CallerCache(options.groups_timeout)

    # ------------------------------------------------------------------ helpers

    def _attrs(self, inode: Inode) -> pyfuse3.EntryAttributes:
        length = self.files.length_of(inode) if inode.type == InodeType.FILE else None
        return to_attributes(
            inode,
            entry_timeout=self.options.entry_timeout,
            attr_timeout=self.options.attr_timeout,
            length=length,
        )

    async def _stat(self, inode_id: int, caller: Caller) -> Inode:
        return await self.meta.stat_inode(inode_id, caller=caller)

    # ------------------------------------------------------------------ names

    @fuse_handler
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        if self.fault_name is not None and name == self.fault_name:
            raise RuntimeError(f"injected fault for {name!r} ({FAULT_ENV})")
        try:
            inode = await self.meta.lookup(parent_inode, name, caller=self.caller_of(ctx))
        except ThreeFSError as exc:
            if exc.code == Code.META_NOT_FOUND and self.options.negative_timeout > 0:
                negative = pyfuse3.EntryAttributes()
                negative.st_ino = 0
                negative.entry_timeout = self.options.negative_timeout
                return negative
            raise
        return self._attrs(inode)

    @fuse_handler
    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        return None  # no per-inode state outside open files

    @fuse_handler
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attrs(await self._stat(inode, self.caller_of(ctx)))

    @fuse_handler
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        caller = self.caller_of(ctx)
        file = self.files.file(inode)
        length = attr.st_size if fields.update_size else None
        if length is not None and file is not None:
            await file.flush()  # buffered bytes past the new end must not come back
        times = {}
        if fields.update_atime:
            times["atime"] = TimeSpec(ns=attr.st_atime_ns)
        if fields.update_mtime:
            times["mtime"] = TimeSpec(ns=attr.st_mtime_ns)
        kwargs = {
            "mode": stat.S_IMODE(attr.st_mode) if fields.update_mode else None,
            "uid": attr.st_uid if fields.update_uid else None,
            "gid": attr.st_gid if fields.update_gid else None,
            "length": length,
        }
        try:
            updated = await self.meta.set_attr(_at(inode), caller=caller, **kwargs, **times)
        except ThreeFSError as exc:
            # pyfuse3 turns UTIME_NOW into our clock's time; a non-owner with write permission
            # may set "now" but not a value, so a refused time close to now is tried as "now".
            now = time.time_ns()
            close = all(abs(spec.ns - now) < _NOW_SLACK_NS for spec in times.values())
            if exc.code != Code.META_NOT_PERMITTED or not times or not close:
                raise
            times = {key: TimeSpec(now=True) for key in times}
            updated = await self.meta.set_attr(_at(inode), caller=caller, **kwargs, **times)
        if file is not None:
            if length is not None:
                file.truncated(updated)
            else:
                file.seen(updated)
        return self._attrs(updated)

    @fuse_handler
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return await self.meta.readlink(_at(inode), caller=self.caller_of(ctx))

    @fuse_handler
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        kind = _MKNOD_TYPES.get(stat.S_IFMT(mode))
        if kind is None:
            raise pyfuse3.FUSEError(errno.EINVAL)
        rdev = rdev if kind in (InodeType.CHAR_DEVICE, InodeType.BLOCK_DEVICE) else 0
        inode = await self.meta.mknod(
            _at(parent_inode, name), kind, stat.S_IMODE(mode), rdev, caller=self.caller_of(ctx)
        )
        return self._attrs(inode)

    @fuse_handler
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        inode = await self.meta.mkdir(_at(parent_inode, name), stat.S_IMODE(mode), caller=self.caller_of(ctx))
        return self._attrs(inode)

    @fuse_handler
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.meta.remove(_at(parent_inode, name), caller=self.caller_of(ctx))

    @fuse_handler
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.meta.remove(_at(parent_inode, name), directory=True, caller=self.caller_of(ctx))

    @fuse_handler
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        inode = await self.meta.symlink(_at(parent_inode, name), target, caller=self.caller_of(ctx))
        return self._attrs(inode)

    @fuse_handler
    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:
        bits = 0
        if flags & pyfuse3.RENAME_NOREPLACE:
            bits |= wire.RenameFlags.NOREPLACE
        if flags & pyfuse3.RENAME_EXCHANGE:
            bits |= wire.RenameFlags.EXCHANGE
        if flags & ~(pyfuse3.RENAME_NOREPLACE | pyfuse3.RENAME_EXCHANGE):
            raise pyfuse3.FUSEError(errno.EINVAL)
        await self.meta.rename(
            _at(parent_inode_old, name_old),
            _at(parent_inode_new, name_new),
            flags=bits,
            caller=self.caller_of(ctx),
        )

    @fuse_handler
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        linked = await self.meta.hard_link(
            _at(inode), _at(new_parent_inode, new_name), caller=self.caller_of(ctx)
        )
        return self._attrs(linked)

    # ------------------------------------------------------------------ files

    async def _open(
        self, at: PathAt, flags: int, caller: Caller, create_mode: int | None = None
    ) -> tuple[Handle, bool]:
        """Open (``create_mode`` given: create) what ``at`` names and make a handle."""
        bits, writable = _open_flags(flags)
        if flags & os.O_TRUNC and at.path == b"":
            existing = self.files.file(at.parent)
            if existing is not None:
                await existing.flush()
        if create_mode is not None:
            bits |= OpenFlags.CREATE
            if flags & os.O_EXCL:
                bits |= OpenFlags.EXCLUSIVE
        response = await self.meta.open(
            at, bits, 0o644 if create_mode is None else create_mode, caller=caller
        )
        handle = self.files.open(response.inode, caller, writable, response.session_id)
        if bits & OpenFlags.TRUNCATE:
            handle.file.truncated(response.inode)
        return handle, response.created

    @fuse_handler
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        handle, _ = await self._open(_at(inode), flags, self.caller_of(ctx))
        if self.options.attr_timeout > 0:
            # Close-to-open with cached attributes: the kernel's size may predate another
            # client's close, and reads stop at it. Drop them (attributes only: no data is
            # written back, so this cannot wait on this daemon); the next use asks getattr.
            pyfuse3.invalidate_inode(inode, attr_only=True)
        return pyfuse3.FileInfo(fh=handle.fh, keep_cache=False)

    @fuse_handler
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        handle, _ = await self._open(_at(parent_inode, name), flags, self.caller_of(ctx), stat.S_IMODE(mode))
        return pyfuse3.FileInfo(fh=handle.fh, keep_cache=False), self._attrs(handle.file.inode)

    def _handle(self, fh: int) -> Handle:
        handle = self.files.handles.get(fh)
        if handle is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        return handle

    @fuse_handler
    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await self._handle(fh).file.read(off, size)

    @fuse_handler
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        handle = self._handle(fh)
        await handle.file.write(off, buf)
        return len(buf)

    async def _sync(self, handle: Handle, *, close: bool) -> None:
        """Send buffered bytes, then tell meta where the writes ended (``close``: end the session)."""
        file = handle.file
        await file.flush()
        if not handle.writable or not handle.session_id:
            return
        if not (file.dirty or close):
            return
        wrote, file.dirty = file.dirty, False
        try:
            inode = await self.meta.sync(
                file.inode.id,
                session_id=handle.session_id,
                length_hint=file.written_end,
                wrote=wrote,
                close=close,
                caller=handle.caller,
            )
        except BaseException:
            file.dirty = file.dirty or wrote
            raise
        file.seen(inode)

    @fuse_handler
    async def flush(self, fh: int) -> None:
        # close(2) of one descriptor: what was written must be visible to other clients now
        await self._sync(self._handle(fh), close=False)

    @fuse_handler
    async def fsync(self, fh: int, datasync: bool) -> None:
        await self._sync(self._handle(fh), close=False)

    @fuse_handler
    async def release(self, fh: int) -> None:
        handle = self._handle(fh)
        try:
            await self._sync(handle, close=True)
        finally:
            self.files.close(handle)

    # ------------------------------------------------------------------ directories

    @fuse_handler
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        caller = self.caller_of(ctx)
        response = await self.meta.open(_at(inode), OpenFlags.READ, caller=caller)
        if response.inode.type != InodeType.DIRECTORY:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return self.files.open_dir(response.inode, caller)

    async def _fill(self, handle: DirHandle) -> None:
        """Fetch the next page of ``handle`` (``.`` and ``..`` first)."""
        if not handle.started:
            handle.started = True
            directory = handle.inode
            parent = directory
            if directory.id != wire.ROOT_INODE and directory.parent:
                try:
                    parent = await self._stat(directory.parent, handle.caller)
                except ThreeFSError:
                    parent = directory
            handle.entries += [(b".", self._attrs(directory)), (b"..", self._attrs(parent))]
            return
        page = await self.meta.list(
            _at(handle.inode.id), after=handle.after, limit=_LIST_PAGE, with_attrs=True, caller=handle.caller
        )
        for entry in page.entries:
            if entry.attrs is not None:  # an entry whose inode vanished meanwhile is left out
                handle.entries.append((entry.name, self._attrs(entry.attrs)))
        if page.entries:
            handle.after = page.entries[-1].name
        handle.more = page.more and bool(page.entries)

    @fuse_handler
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        handle = self.files.dirs.get(fh)
        if handle is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        if start_id == 0 and handle.started:  # rewinddir: list afresh
            handle.entries.clear()
            handle.after, handle.more, handle.started = b"", True, False
        index = start_id
        while True:
            while index >= len(handle.entries) and (handle.more or not handle.started):
                await self._fill(handle)
            if index >= len(handle.entries):
                return
            name, attrs = handle.entries[index]
            if not pyfuse3.readdir_reply(token, name, attrs, index + 1):
                return
            index += 1

    @fuse_handler
    async def releasedir(self, fh: int) -> None:
        self.files.dirs.pop(fh, None)

    @fuse_handler
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        return None  # every directory change is committed by meta before it is answered

    # ------------------------------------------------------------------ file system

    @fuse_handler
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        info = await self.meta.statfs(caller=self.caller_of(ctx))
        data = pyfuse3.StatvfsData()
        block = info.block_size or 4096
        data.f_bsize = block
        data.f_frsize = block
        data.f_blocks = info.capacity_bytes // block
        data.f_bfree = info.free_bytes // block
        data.f_bavail = info.free_bytes // block
        inodes_free = 1 << 32  # meta allocates ids from 64 bits: report a large, fixed room
        data.f_files = info.inodes_used + inodes_free
        data.f_ffree = inodes_free
        data.f_favail = inodes_free
        data.f_namemax = info.max_name_bytes
        return data

    @fuse_handler
    async def access(self, inode: int, mode: int, ctx: pyfuse3.RequestContext) -> bool:
        caller = self.caller_of(ctx)
        found = await self._stat(inode, caller)
        return mode == os.F_OK or may(found, caller, mode & 7)

    # ------------------------------------------------------------------ extended attributes

    @fuse_handler
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        return await self.meta.get_xattr(_at(inode), name, caller=self.caller_of(ctx))

    @fuse_handler
    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext) -> None:
        # pyfuse3 checks XATTR_CREATE / XATTR_REPLACE itself (with getxattr) before calling this
        await self.meta.set_xattr(_at(inode), name, value, caller=self.caller_of(ctx))

    @fuse_handler
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return await self.meta.list_xattr(_at(inode), caller=self.caller_of(ctx))

    @fuse_handler
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.meta.remove_xattr(_at(inode), name, caller=self.caller_of(ctx))
