"""``File``: the synchronous face of an ``AsyncFile``, an ``io.RawIOBase`` so that code that
expects a Python binary file (pandas, pyarrow, ``torch.save``, ``shutil.copyfileobj``,
``io.BufferedReader``) takes it as is."""

from __future__ import annotations

import io
import os
import warnings
from typing import TYPE_CHECKING, Any

from client.chunk_io import Buffer as _AbcBuffer
from client.fs.async_file import AsyncFile

if TYPE_CHECKING:
    from client.fs.loop import LoopThread

__all__ = ["File"]

_LINE_BLOCK = 64 << 10


class File(io.RawIOBase):
    """An open file of ``FileSystem.open``. Reads and writes never come back short except at
    EOF; ``read(-1)`` / ``readall`` read to the end in one batch. The write buffer, length and
    close-to-open rules are ``AsyncFile``'s. One thread at a time per file is the intent, but
    calls from several threads are ordered safely."""

    def __init__(self, loop: LoopThread[Any], file: AsyncFile) -> None:
        super().__init__()
        self._loop = loop
        self._file = file

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._file.name

    @property
    def mode(self) -> str:
        return self._file.mode

    @property
    def inode_id(self) -> int:
        return self._file.inode_id

    @property
    def async_file(self) -> AsyncFile:
        """The ``AsyncFile`` underneath (for trio code sharing the loop)."""
        return self._file

    def _run(self, method: Any, *args: Any) -> Any:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return self._loop.run(method, *args)

    # ------------------------------------------------------------------ io.RawIOBase

    def readable(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return self._file.readable()

    def writable(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return self._file.writable()

    def seekable(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._run(self._file.read, -1 if size is None else size)

    def readall(self) -> bytes:
        return self.read(-1)

    def readline(self, size: int | None = -1) -> bytes:
        """One line (to ``b"\\n"`` included), reading ahead in blocks rather than byte by byte as
        ``io.RawIOBase`` would; for many small lines wrap the file in ``io.BufferedReader``."""
        limit = -1 if size is None else size
        line = bytearray()
        position = self.tell()
        while limit < 0 or len(line) < limit:
            want = _LINE_BLOCK if limit < 0 else min(_LINE_BLOCK, limit - len(line))
            block = self.pread(want, position + len(line))
            if not block:
                break
            end = block.find(b"\n")
            if end >= 0:
                line += block[: end + 1]
                break
            line += block
        self.seek(position + len(line))
        return bytes(line)

    def readinto(self, buffer: _AbcBuffer) -> int:  # type: ignore[override]
        return self._run(self._file.readinto, buffer)

    def pread(self, size: int, offset: int) -> bytes:
        return self._run(self._file.pread, size, offset)

    def preadinto(self, buffer: _AbcBuffer, offset: int) -> int:
        return self._run(self._file.preadinto, buffer, offset)

    def write(self, data: _AbcBuffer) -> int:  # type: ignore[override]
        return self._run(self._file.write, data)

    def pwrite(self, data: _AbcBuffer, offset: int) -> int:
        return self._run(self._file.pwrite, data, offset)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._run(self._file.seek, offset, whence)

    def tell(self) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return self._file.tell()

    def truncate(self, size: int | None = None) -> int:
        return self._run(self._file.truncate, size)

    def size(self) -> int:
        return self._file.size()

    def flush(self) -> None:
        if not self.closed and not self._file.closed:
            self._loop.run(self._file.flush)

    def fsync(self) -> None:
        self._run(self._file.fsync)

    def fileno(self) -> int:
        raise io.UnsupportedOperation("a threefs file has no OS file descriptor")

    def isatty(self) -> bool:
        return False

    def stat(self) -> os.stat_result:
        return self._run(self._file.stat)

    def close(self) -> None:
        """Send buffered writes, report the length to meta, end the write session (see
        ``AsyncFile.close``). Idempotent."""
        if self.closed:
            return
        try:
            if not self._loop.closed:
                self._loop.run(self._file.close)
        finally:
            super().close()

    def __del__(self) -> None:
        if self.closed:
            return
        if self._loop.closed or self._loop.in_loop_thread():
            warnings.warn(f"unclosed threefs file {self.name!r}", ResourceWarning, stacklevel=2)
            super().close()
            return
        try:
            self.close()
        except Exception:  # a finalizer must not raise; the write error cannot reach anyone
            warnings.warn(
                f"closing threefs file {self.name!r} failed at finalization", ResourceWarning, stacklevel=2
            )

    def __repr__(self) -> str:
        return f"<threefs.File {self._file.name!r} mode={self._file.mode!r}>"
