"""``FileSystem``: the synchronous API (scripts, training jobs, data loaders). Every call runs
the matching ``AsyncFileSystem`` method on a trio loop in a background thread, so any number of
threads may share one ``FileSystem``; ``close()`` ends the loop and the cluster connections."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

from client.fs.async_fs import AsyncFileSystem, PathArg, normalize
from client.fs.loop import LoopThread
from client.fs.stat import DirEntry
from client.fs.sync_file import File
from threefs.wire.meta import InodeType, StatFsResponse

__all__ = ["FileSystem"]


class FileSystem:
    """The file system through a background trio loop (see the module docstring). Build one
    with ``threefs.connect(...)``. Methods are those of ``AsyncFileSystem``, synchronous, with
    the same arguments, results and ``OSError``s; ``open`` returns a ``File``."""

    def __init__(self, opener: Callable[[], AbstractAsyncContextManager[AsyncFileSystem]]) -> None:
        """``opener()``: an async context manager that yields the ``AsyncFileSystem`` and owns
        its connections (``client.connect.open_filesystem``). Connects before returning."""
        self._loop: LoopThread[AsyncFileSystem] = LoopThread(opener, name="threefs-client")
        self.async_fs = self._loop.start()

    def _run(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            return self._loop.run(functools.partial(method, *args, **kwargs))
        return self._loop.run(method, *args)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the connections and stop the loop thread; idempotent. Files still open lose
        their buffered writes (close them first)."""
        self._loop.close()

    @property
    def closed(self) -> bool:
        return self._loop.closed

    def __enter__(self) -> FileSystem:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        loop = getattr(self, "_loop", None)
        if loop is not None and not loop.closed and not loop.in_loop_thread():
            loop.close()

    # ------------------------------------------------------------------ files

    def open(
        self, path: PathArg, mode: str = "rb", *, perm: int = 0o644, buffer_bytes: int | None = None
    ) -> File:
        afile = self._run(self.async_fs.open, path, mode, perm=perm, buffer_bytes=buffer_bytes)
        return File(self._loop, afile)

    def read_bytes(self, path: PathArg, start: int = 0, end: int | None = None) -> bytes:
        return self._run(self.async_fs.read_bytes, path, start, end)

    def write_bytes(self, path: PathArg, data: bytes, *, perm: int = 0o644) -> int:
        return self._run(self.async_fs.write_bytes, path, data, perm=perm)

    def read_ranges(self, ranges: Sequence[tuple[PathArg, int, int]]) -> list[bytes]:
        return self._run(self.async_fs.read_ranges, ranges)

    def truncate(self, path: PathArg, length: int) -> None:
        self._run(self.async_fs.truncate, path, length)

    # ------------------------------------------------------------------ attributes

    def stat(self, path: PathArg, *, follow_symlinks: bool = True) -> os.stat_result:
        return self._run(self.async_fs.stat, path, follow_symlinks=follow_symlinks)

    def lstat(self, path: PathArg) -> os.stat_result:
        return self._run(self.async_fs.lstat, path)

    def exists(self, path: PathArg) -> bool:
        return self._run(self.async_fs.exists, path)

    def isdir(self, path: PathArg) -> bool:
        return self._run(self.async_fs.isdir, path)

    def isfile(self, path: PathArg) -> bool:
        return self._run(self.async_fs.isfile, path)

    def islink(self, path: PathArg) -> bool:
        return self._run(self.async_fs.islink, path)

    def chmod(self, path: PathArg, mode: int, *, follow_symlinks: bool = True) -> None:
        self._run(self.async_fs.chmod, path, mode, follow_symlinks=follow_symlinks)

    def chown(self, path: PathArg, uid: int, gid: int, *, follow_symlinks: bool = True) -> None:
        self._run(self.async_fs.chown, path, uid, gid, follow_symlinks=follow_symlinks)

    def utime(
        self,
        path: PathArg,
        times: tuple[float, float] | None = None,
        *,
        ns: tuple[int, int] | None = None,
        follow_symlinks: bool = True,
    ) -> None:
        self._run(self.async_fs.utime, path, times, ns=ns, follow_symlinks=follow_symlinks)

    def statfs(self) -> StatFsResponse:
        return self._run(self.async_fs.statfs)

    def realpath(self, path: PathArg) -> str:
        return self._run(self.async_fs.realpath, path)

    # ------------------------------------------------------------------ directories

    def scandir(self, path: PathArg = "/") -> list[DirEntry]:
        return self._run(self.async_fs.scandir, path)

    def listdir(self, path: PathArg = "/") -> list[str]:
        return self._run(self.async_fs.listdir, path)

    def walk(self, top: PathArg = "/", *, topdown: bool = True) -> Iterator[tuple[str, list[str], list[str]]]:
        """As ``os.walk`` (see ``AsyncFileSystem.walk``); each directory is listed when reached."""
        top = normalize(top)
        try:
            entries = self.scandir(top)
        except OSError:
            return
        dirs = [e.name for e in entries if e.inode_type == InodeType.DIRECTORY]
        files = [e.name for e in entries if e.inode_type != InodeType.DIRECTORY]
        if topdown:
            yield top, dirs, files
        base = top.rstrip("/")
        for name in dirs:
            yield from self.walk(f"{base}/{name}", topdown=topdown)
        if not topdown:
            yield top, dirs, files

    def mkdir(self, path: PathArg, mode: int = 0o755) -> None:
        self._run(self.async_fs.mkdir, path, mode)

    def makedirs(self, path: PathArg, mode: int = 0o755, *, exist_ok: bool = False) -> None:
        self._run(self.async_fs.makedirs, path, mode, exist_ok=exist_ok)

    def rmdir(self, path: PathArg) -> None:
        self._run(self.async_fs.rmdir, path)

    def rmtree(self, path: PathArg) -> None:
        self._run(self.async_fs.rmtree, path)

    # ------------------------------------------------------------------ names

    def remove(self, path: PathArg) -> None:
        self._run(self.async_fs.remove, path)

    unlink = remove

    def rename(self, src: PathArg, dst: PathArg, *, noreplace: bool = False, exchange: bool = False) -> None:
        self._run(self.async_fs.rename, src, dst, noreplace=noreplace, exchange=exchange)

    replace = rename

    def symlink(self, target: str | bytes, path: PathArg) -> None:
        self._run(self.async_fs.symlink, target, path)

    def readlink(self, path: PathArg) -> str:
        return self._run(self.async_fs.readlink, path)

    def link(self, src: PathArg, dst: PathArg) -> None:
        self._run(self.async_fs.link, src, dst)
