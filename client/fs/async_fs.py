"""``AsyncFileSystem``: the file system API for trio code, on a ``MetaClient`` (namespace) and a
``StorageClient`` (file bytes). Paths are absolute within the file system (a relative path is
taken from the root); every method raises ``OSError`` subclasses (see ``client.fs.errors``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence

from client.fs.async_file import AsyncFile
from client.fs.config import FileSystemConfig
from client.fs.errors import os_error, os_errors
from client.fs.modes import parse_mode
from client.fs.ranges import read_ranges
from client.fs.stat import DirEntry, stat_result
from client.meta import MetaClient
from client.storage import StorageClient
from threefs.errors import Code, ThreeFSError
from threefs.wire.meta import Inode, InodeType, RenameFlags, StatFsResponse, TimeSpec

__all__ = ["AsyncFileSystem", "PathArg", "normalize"]

PathArg = str | bytes | os.PathLike[str]


def normalize(path: PathArg) -> str:
    """``path`` as an absolute ``str`` ("/" prefixed when relative; no other change)."""
    text = os.fsdecode(path)
    return text if text.startswith("/") else "/" + text


class AsyncFileSystem:
    """The file system through ``meta`` and ``storage`` (borrowed: the caller keeps their RPC
    client open; ``client.connect.open_filesystem`` builds and owns them). Safe to use from many
    tasks at once."""

    def __init__(
        self, meta: MetaClient, storage: StorageClient, config: FileSystemConfig | None = None
    ) -> None:
        self.meta = meta
        self.storage = storage
        self.config = config or FileSystemConfig()

    # ------------------------------------------------------------------ files

    async def open(
        self, path: PathArg, mode: str = "rb", *, perm: int = 0o644, buffer_bytes: int | None = None
    ) -> AsyncFile:
        """Open a file: ``mode`` as Python's ``open`` reads it, binary only (``rb``, ``wb``,
        ``ab``, ``xb``, ``r+b``, ``w+b``, ``a+b``); ``perm``: the permission bits of a file it
        creates; ``buffer_bytes``: this file's write buffer (default
        ``config.write_buffer_bytes``). Close the file (``async with``) to make its writes
        visible to other opens."""
        parsed = parse_mode(mode)
        path = normalize(path)
        with os_errors(path):
            opened = await self.meta.open(path, parsed.flags, perm & 0o7777)
        buffer = self.config.write_buffer_bytes if buffer_bytes is None else buffer_bytes
        try:
            return AsyncFile(self, path, parsed, opened, buffer)
        except OSError:
            if opened.session_id:
                with os_errors(path):
                    await self.meta.close(opened.inode.id, opened.session_id)
            raise

    async def read_bytes(self, path: PathArg, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` of a file (to its end by default)."""
        async with await self.open(path, "rb") as file:
            stop = file.size() if end is None else min(end, file.size())
            return await file.pread(max(stop - start, 0), start)

    async def write_bytes(self, path: PathArg, data: bytes, *, perm: int = 0o644) -> int:
        """Create or replace the contents of a file with ``data``; returns its length."""
        async with await self.open(path, "wb", perm=perm) as file:
            return await file.write(data)

    async def read_ranges(self, ranges: Sequence[tuple[PathArg, int, int]]) -> list[bytes]:
        """Many ``(path, offset, length)`` ranges of many files in one parallel batch: the
        distinct paths are stat'ed in one meta call, then every range's chunks are read in one
        storage batch (grouped per storage node). Each result is clipped at the file's length
        (short or empty past EOF). Raises the first failing path's ``OSError``."""
        return await read_ranges(self, [(normalize(p), o, n) for p, o, n in ranges])

    async def truncate(self, path: PathArg, length: int) -> None:
        path = normalize(path)
        with os_errors(path):
            await self.meta.set_attr(path, length=length)

    # ------------------------------------------------------------------ attributes

    async def stat(self, path: PathArg, *, follow_symlinks: bool = True) -> os.stat_result:
        return stat_result(await self._inode(path, follow=follow_symlinks))

    async def lstat(self, path: PathArg) -> os.stat_result:
        return await self.stat(path, follow_symlinks=False)

    async def _inode(self, path: PathArg, *, follow: bool = True) -> Inode:
        path = normalize(path)
        with os_errors(path):
            return await self.meta.stat(path, follow=follow)

    async def _type_or_none(self, path: PathArg, *, follow: bool = True) -> InodeType | None:
        try:
            return (await self._inode(path, follow=follow)).type
        except (FileNotFoundError, NotADirectoryError):
            return None

    async def exists(self, path: PathArg) -> bool:
        return await self._type_or_none(path) is not None

    async def isdir(self, path: PathArg) -> bool:
        return await self._type_or_none(path) == InodeType.DIRECTORY

    async def isfile(self, path: PathArg) -> bool:
        return await self._type_or_none(path) == InodeType.FILE

    async def islink(self, path: PathArg) -> bool:
        return await self._type_or_none(path, follow=False) == InodeType.SYMLINK

    async def chmod(self, path: PathArg, mode: int, *, follow_symlinks: bool = True) -> None:
        path = normalize(path)
        with os_errors(path):
            await self.meta.set_attr(path, mode=mode & 0o7777, follow=follow_symlinks)

    async def chown(self, path: PathArg, uid: int, gid: int, *, follow_symlinks: bool = True) -> None:
        """Change the owner and/or group; -1 leaves one unchanged (as ``os.chown``)."""
        path = normalize(path)
        with os_errors(path):
            await self.meta.set_attr(
                path, uid=None if uid == -1 else uid, gid=None if gid == -1 else gid, follow=follow_symlinks
            )

    async def utime(
        self,
        path: PathArg,
        times: tuple[float, float] | None = None,
        *,
        ns: tuple[int, int] | None = None,
        follow_symlinks: bool = True,
    ) -> None:
        """Set (atime, mtime) in seconds (``times``) or nanoseconds (``ns``); neither: now."""
        if times is not None and ns is not None:
            raise ValueError("utime: give times or ns, not both")
        if ns is not None:
            atime, mtime = TimeSpec(ns=int(ns[0])), TimeSpec(ns=int(ns[1]))
        elif times is not None:
            atime, mtime = TimeSpec(ns=round(times[0] * 1e9)), TimeSpec(ns=round(times[1] * 1e9))
        else:
            atime = mtime = TimeSpec(now=True)
        path = normalize(path)
        with os_errors(path):
            await self.meta.set_attr(path, atime=atime, mtime=mtime, follow=follow_symlinks)

    async def statfs(self) -> StatFsResponse:
        with os_errors():
            return await self.meta.statfs()

    async def realpath(self, path: PathArg) -> str:
        """The absolute path of what ``path`` names, symlinks resolved."""
        path = normalize(path)
        with os_errors(path):
            return os.fsdecode(await self.meta.get_real_path(path))

    # ------------------------------------------------------------------ directories

    async def scandir(self, path: PathArg = "/") -> list[DirEntry]:
        """The entries of a directory with their attributes, in name order (paged from meta:
        not one snapshot when the directory changes meanwhile)."""
        path = normalize(path)
        with os_errors(path):
            entries = await self.meta.list_all(path, with_attrs=True, page=self.config.list_page)
        base = path.rstrip("/")
        result = []
        for entry in entries:
            name = os.fsdecode(entry.name)
            result.append(DirEntry(name, f"{base}/{name}", InodeType(entry.type), entry.inode, entry.attrs))
        return result

    async def listdir(self, path: PathArg = "/") -> list[str]:
        path = normalize(path)
        with os_errors(path):
            entries = await self.meta.list_all(path, page=self.config.list_page)
        return [os.fsdecode(e.name) for e in entries]

    async def walk(
        self, top: PathArg = "/", *, topdown: bool = True
    ) -> AsyncIterator[tuple[str, list[str], list[str]]]:
        """``(dirpath, dirnames, filenames)`` as ``os.walk`` gives them (symlinks to directories
        are listed with the files and not followed; with ``topdown`` the caller may prune
        ``dirnames``). A directory that vanishes or cannot be listed is skipped."""
        top = normalize(top)
        try:
            entries = await self.scandir(top)
        except OSError:
            return
        dirs = [e.name for e in entries if e.inode_type == InodeType.DIRECTORY]
        files = [e.name for e in entries if e.inode_type != InodeType.DIRECTORY]
        if topdown:
            yield top, dirs, files
        base = top.rstrip("/")
        for name in dirs:
            async for item in self.walk(f"{base}/{name}", topdown=topdown):
                yield item
        if not topdown:
            yield top, dirs, files

    async def mkdir(self, path: PathArg, mode: int = 0o755) -> None:
        path = normalize(path)
        with os_errors(path):
            await self.meta.mkdir(path, mode & 0o7777)

    async def makedirs(self, path: PathArg, mode: int = 0o755, *, exist_ok: bool = False) -> None:
        """Create the directory and any missing parents (``mkdir -p``); without ``exist_ok``,
        an existing ``path`` is FileExistsError."""
        path = normalize(path)
        if not exist_ok and await self._type_or_none(path) is not None:
            raise os_error(ThreeFSError(Code.META_EXISTS, "the directory exists"), path)
        with os_errors(path):
            inode = await self.meta.mkdir(path, mode & 0o7777, recursive=True)
        if inode.type != InodeType.DIRECTORY:
            raise os_error(ThreeFSError(Code.META_EXISTS, "a non-directory has that name"), path)

    async def rmdir(self, path: PathArg) -> None:
        path = normalize(path)
        with os_errors(path):
            await self.meta.rmdir(path)

    async def rmtree(self, path: PathArg) -> None:
        """Remove a directory and everything under it in one meta transaction (the chunks go
        to GC in the background). NotADirectoryError for anything but a directory (a symlink
        to one included, as ``shutil.rmtree`` refuses)."""
        path = normalize(path)
        inode = await self._inode(path, follow=False)
        if inode.type != InodeType.DIRECTORY:
            raise os_error(ThreeFSError(Code.META_NOT_DIRECTORY, "rmtree needs a directory"), path)
        with os_errors(path):
            await self.meta.remove(path, directory=True, recursive=True)

    # ------------------------------------------------------------------ names

    async def remove(self, path: PathArg) -> None:
        """Remove a non-directory entry (``os.remove``; IsADirectoryError for a directory)."""
        path = normalize(path)
        with os_errors(path):
            await self.meta.unlink(path)

    unlink = remove

    async def rename(
        self, src: PathArg, dst: PathArg, *, noreplace: bool = False, exchange: bool = False
    ) -> None:
        """Atomically rename ``src`` to ``dst``, replacing ``dst`` as POSIX ``rename`` does (a
        file replaces a file, a directory an empty directory); ``noreplace``: FileExistsError
        when ``dst`` exists; ``exchange``: swap the two."""
        src, dst = normalize(src), normalize(dst)
        flags = (RenameFlags.NOREPLACE if noreplace else 0) | (RenameFlags.EXCHANGE if exchange else 0)
        with os_errors(src, dst):
            await self.meta.rename(src, dst, flags=int(flags))

    replace = rename

    async def symlink(self, target: str | bytes, path: PathArg) -> None:
        """Create symlink ``path`` pointing at ``target`` (``os.symlink(target, path)``)."""
        path = normalize(path)
        with os_errors(path):
            await self.meta.symlink(path, target)

    async def readlink(self, path: PathArg) -> str:
        path = normalize(path)
        with os_errors(path):
            return os.fsdecode(await self.meta.readlink(path))

    async def link(self, src: PathArg, dst: PathArg) -> None:
        """Hard link: ``dst`` becomes another name of file ``src``."""
        src, dst = normalize(src), normalize(dst)
        with os_errors(src, dst):
            await self.meta.hard_link(src, dst)
