"""``threefs://`` for fsspec (registered by the ``fsspec.specs`` entry point), so pandas,
pyarrow, DuckDB and PyTorch read and write threefs paths::

    pandas.read_parquet("threefs:///datasets/part-0.parquet")
    fsspec.filesystem("threefs", cluster_config="/srv/threefs/cluster.toml")

URLs are ``threefs://<absolute path>`` (``threefs:///a/b`` and ``threefs://a/b`` both name
``/a/b``). Storage options are ``client.connect``'s (``cluster_config``, ``mgmtd``, ``secret``,
``secret_file``, ``admin``, ...); without them the default cluster config is used
(``$THREEFS_CLUSTER_CONFIG``, else ``cluster.toml`` of ``threefs up``'s data directory).
"""

from __future__ import annotations

import io
import os
import stat as st
from datetime import UTC, datetime
from typing import Any

from fsspec import AbstractFileSystem

from client.connect import connect
from client.fs import FileSystem

__all__ = ["ThreeFSFileSystem"]

_COPY_BYTES = 8 << 20
_READ_BUFFER_BYTES = 1 << 20


def _info(path: str, result: os.stat_result) -> dict[str, Any]:
    mode = result.st_mode
    if st.S_ISDIR(mode):
        kind = "directory"
    elif st.S_ISREG(mode):
        kind = "file"
    else:
        kind = "other"
    return {
        "name": path,
        "size": result.st_size if kind == "file" else 0,
        "type": kind,
        "mode": mode,
        "ino": result.st_ino,
        "nlink": result.st_nlink,
        "uid": result.st_uid,
        "gid": result.st_gid,
        "mtime": result.st_mtime,
        "created": result.st_ctime,
        "islink": st.S_ISLNK(mode),
    }


class ThreeFSFileSystem(AbstractFileSystem):
    """fsspec file system on a ``client.FileSystem`` (one per distinct set of storage options:
    fsspec caches instances). ``open`` returns the library's ``File`` (buffered by
    ``io.BufferedReader`` for reads)."""

    protocol = "threefs"
    root_marker = "/"

    def __init__(self, *args: Any, **storage_options: Any) -> None:
        connect_options = {
            k: storage_options.pop(k)
            for k in list(storage_options)
            if k in {"cluster_config", "mgmtd", "secret", "secret_file", "caller", "admin", "meta", "config"}
        }
        super().__init__(*args, **storage_options)
        if args:
            connect_options.setdefault("cluster_config", args[0])
        self.fs: FileSystem = connect(**connect_options)

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]  # type: ignore[return-value]
        path = os.fspath(path)
        if path.startswith("threefs://"):
            path = path[len("threefs://") :]
        path = "/" + path.lstrip("/")
        return path.rstrip("/") or "/"

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        return {}

    # ------------------------------------------------------------------ listing

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        result = self.fs.stat(path)
        if not st.S_ISDIR(result.st_mode):
            return [_info(path, result)] if detail else [path]
        entries = self.fs.scandir(path)
        if not detail:
            return [e.path for e in entries]
        infos = []
        for entry in entries:
            if entry.is_symlink():
                try:  # as os.stat does, describe what the link points at
                    infos.append(_info(entry.path, self.fs.stat(entry.path)) | {"islink": True})
                    continue
                except OSError:
                    pass
            infos.append(_info(entry.path, entry.stat()))
        return infos

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        return _info(path, self.fs.stat(path))

    def exists(self, path: str, **kwargs: Any) -> bool:
        return self.fs.exists(self._strip_protocol(path))

    def isdir(self, path: str) -> bool:
        return self.fs.isdir(self._strip_protocol(path))

    def isfile(self, path: str) -> bool:
        return self.fs.isfile(self._strip_protocol(path))

    def modified(self, path: str) -> datetime:
        return datetime.fromtimestamp(self.fs.stat(self._strip_protocol(path)).st_mtime, tz=UTC)

    def created(self, path: str) -> datetime:
        return datetime.fromtimestamp(self.fs.stat(self._strip_protocol(path)).st_ctime, tz=UTC)

    # ------------------------------------------------------------------ files

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        path = self._strip_protocol(path)
        if "r" in mode and "+" not in mode:
            raw = self.fs.open(path, "rb")
            buffered = io.BufferedReader(raw, buffer_size=block_size or _READ_BUFFER_BYTES)
            return buffered
        return self.fs.open(path, mode, buffer_bytes=block_size)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        path = self._strip_protocol(path)
        if (start is not None and start < 0) or (end is not None and end < 0):
            size = self.fs.stat(path).st_size
            start = size + start if start is not None and start < 0 else start
            end = size + end if end is not None and end < 0 else end
        return self.fs.read_bytes(path, max(start or 0, 0), end)

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        if mode == "create" and self.fs.exists(path):
            raise FileExistsError(path)
        self.fs.write_bytes(path, value)

    def cat_ranges(
        self,
        paths: list[str],
        starts: list[int | None] | int | None,
        ends: list[int | None] | int | None,
        max_gap: int | None = None,
        on_error: str = "return",
        **kwargs: Any,
    ) -> list[Any]:
        """Every range in one ``read_ranges`` batch (negative or missing bounds resolved with
        one stat per file); with ``on_error="return"``, a failing batch is retried range by
        range and each failure is returned in its place."""
        paths = [self._strip_protocol(p) for p in paths]
        count = len(paths)
        starts = starts if isinstance(starts, list) else [starts] * count
        ends = ends if isinstance(ends, list) else [ends] * count
        if not len(starts) == len(ends) == count:
            raise ValueError("cat_ranges: paths, starts and ends differ in length")
        try:
            sizes: dict[str, int] = {}
            ranges = []
            for path, start, end in zip(paths, starts, ends, strict=True):
                if start is None or start < 0 or end is None or end < 0:
                    if path not in sizes:
                        sizes[path] = self.fs.stat(path).st_size
                    size = sizes[path]
                    start = 0 if start is None else (size + start if start < 0 else start)
                    end = size if end is None else (size + end if end < 0 else end)
                ranges.append((path, max(start, 0), max(end - max(start, 0), 0)))
            return self.fs.read_ranges(ranges)
        except OSError:
            if on_error != "return":
                raise
        results: list[Any] = []
        for path, start, end in zip(paths, starts, ends, strict=True):
            try:
                results.append(self.cat_file(path, start, end))
            except Exception as exc:  # returned in place, as fsspec's on_error="return" asks
                results.append(exc)
        return results

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        if truncate or not self.fs.exists(path):
            self.fs.open(path, "wb").close()
        else:
            self.fs.utime(path)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        path1, path2 = self._strip_protocol(path1), self._strip_protocol(path2)
        if self.fs.isdir(path1):
            self.fs.makedirs(path2, exist_ok=True)
            return
        with self.fs.open(path1, "rb") as source, self.fs.open(path2, "wb") as target:
            while block := source.read(_COPY_BYTES):
                target.write(block)

    # ------------------------------------------------------------------ changes

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        if create_parents:
            self.fs.makedirs(path)
        else:
            self.fs.mkdir(path)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self.fs.makedirs(self._strip_protocol(path), exist_ok=exist_ok)

    def rmdir(self, path: str) -> None:
        self.fs.rmdir(self._strip_protocol(path))

    def _rm(self, path: str) -> None:  # fsspec's rm_file and rm call it, directories included
        path = self._strip_protocol(path)
        if self.fs.isdir(path):
            self.fs.rmdir(path)
        else:
            self.fs.remove(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Remove files; with ``recursive`` a directory goes in one meta transaction (rmtree)."""
        paths = path if isinstance(path, list) else [path]
        for one in paths:
            one = self._strip_protocol(one)
            if recursive and maxdepth is None and self.fs.isdir(one):
                self.fs.rmtree(one)
            elif recursive:
                super().rm(one, recursive=True, maxdepth=maxdepth)
            else:
                self._rm(one)

    def mv(
        self, path1: str, path2: str, recursive: bool = False, maxdepth: int | None = None, **kwargs: Any
    ) -> None:
        """Rename (atomic, replacing ``path2`` as POSIX rename does); a whole tree moves at once."""
        self.fs.rename(self._strip_protocol(path1), self._strip_protocol(path2))

    def chmod(self, path: str, mode: int) -> None:
        self.fs.chmod(self._strip_protocol(path), mode)

    def symlink(self, target: str, path: str) -> None:
        self.fs.symlink(target, self._strip_protocol(path))

    def islink(self, path: str) -> bool:
        return self.fs.islink(self._strip_protocol(path))
