"""``AsyncFile``: an open threefs file (trio). Reads go straight to storage, split by chunk and
sent in parallel; writes gather in a per-file buffer and go out as large writes; flush, fsync and
close report the end of this handle's writes to meta (close also ends the write session).

Length: the handle knows the file's length from its open (close-to-open consistency: a file
closed by any client before this open reads whole), raised by its own writes and set by its
own ``truncate``. Reads stop at that length (short reads at EOF); appends write at it.
"""

from __future__ import annotations

import errno
import os
from types import TracebackType
from typing import TYPE_CHECKING

import msgspec
import trio

from client.chunk_io import Buffer
from client.fs.errors import bad_mode, closed_file, os_errors
from client.fs.modes import OpenMode
from client.fs.stat import stat_result
from threefs.wire.meta import Inode, InodeType, OpenResponse

if TYPE_CHECKING:
    from client.fs.async_fs import AsyncFileSystem

__all__ = ["AsyncFile"]

_CLOSE_TIMEOUT_S = 60.0


class AsyncFile:
    """An open file of ``AsyncFileSystem.open`` (do not build one yourself). Methods of one file
    run one at a time (a lock orders them); the position is shared by read/write/seek, while
    ``pread``/``pwrite`` leave it alone. Every method raises ``OSError`` (``ValueError`` on a
    closed file, ``io.UnsupportedOperation`` for an operation the mode does not allow).

    Cancellation: a write cancelled while its buffer was being sent leaves that range partly
    written (write it again); ``close`` is shielded, so a cancelled close still ends the write
    session."""

    def __init__(
        self, fs: AsyncFileSystem, path: str, mode: OpenMode, opened: OpenResponse, buffer_bytes: int
    ) -> None:
        inode = opened.inode
        if inode.type != InodeType.FILE or inode.layout is None:
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        self._fs = fs
        self.name = path
        self.mode = mode.mode
        self._open_mode = mode
        self.inode = inode
        self._layout = inode.layout
        self._session = opened.session_id
        self._length = inode.length
        self._position = 0
        self._buffer = bytearray()
        self._buffer_offset = 0
        self._buffer_bytes = buffer_bytes
        self._hint = 0  # the end of this handle's writes (never above a later truncate of it)
        self._unsynced = False  # writes not yet reported to meta
        self._lock = trio.Lock()
        self.closed = False

    # ------------------------------------------------------------------ properties

    @property
    def inode_id(self) -> int:
        return self.inode.id

    def readable(self) -> bool:
        return self._open_mode.readable

    def writable(self) -> bool:
        return self._open_mode.writable

    def seekable(self) -> bool:
        return True

    def size(self) -> int:
        """The file's length as this handle knows it (buffered writes included)."""
        return self._length

    def tell(self) -> int:
        return self._position

    def _check(self, *, read: bool = False, write: bool = False) -> None:
        if self.closed:
            raise closed_file()
        if read and not self._open_mode.readable:
            raise bad_mode("reading")
        if write and not self._open_mode.writable:
            raise bad_mode("writing")

    # ------------------------------------------------------------------ reads

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes from the position (all to the end when ``size`` < 0); fewer at
        EOF, b"" past it. Moves the position."""
        async with self._lock:
            self._check(read=True)
            data = await self._read_at(self._position, size)
            self._position += len(data)
            return data

    async def readinto(self, buffer: Buffer) -> int:
        """Fill ``buffer`` from the position; returns the bytes read (fewer at EOF)."""
        async with self._lock:
            self._check(read=True)
            count = await self._read_into_at(self._position, memoryview(buffer).cast("B"))
            self._position += count
            return count

    async def pread(self, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (the position does not move)."""
        async with self._lock:
            self._check(read=True)
            return await self._read_at(offset, size)

    async def preadinto(self, buffer: Buffer, offset: int) -> int:
        async with self._lock:
            self._check(read=True)
            return await self._read_into_at(offset, memoryview(buffer).cast("B"))

    async def _read_at(self, offset: int, size: int) -> bytes:
        _check_offset(offset)
        available = max(self._length - offset, 0)
        count = available if size is None or size < 0 else min(size, available)
        if count == 0:
            return b""
        buffer = bytearray(count)
        await self._read_into_at(offset, memoryview(buffer))
        return bytes(buffer)

    async def _read_into_at(self, offset: int, out: memoryview) -> int:
        _check_offset(offset)
        count = min(len(out), max(self._length - offset, 0))
        if count == 0:
            return 0
        if self._buffer:
            await self._send_buffer()  # read what this handle wrote
        with os_errors(self.name):
            await self._fs.storage.read_into(self.inode.id, self._layout, offset, out[:count])
        return count

    # ------------------------------------------------------------------ writes

    async def write(self, data: Buffer) -> int:
        """Write all of ``data`` at the position (at the end in append mode); returns its length.
        The bytes may wait in the file's buffer until ``flush``/``fsync``/``close`` or until the
        buffer fills."""
        async with self._lock:
            self._check(write=True)
            if self._open_mode.append:
                self._position = self._length
            count = await self._write_at(self._position, memoryview(data).cast("B"))
            self._position += count
            return count

    async def pwrite(self, data: Buffer, offset: int) -> int:
        """Write ``data`` at ``offset`` (the position does not move; append mode still writes at
        ``offset``, as ``os.pwrite`` on Linux does not)."""
        async with self._lock:
            self._check(write=True)
            return await self._write_at(offset, memoryview(data).cast("B"))

    async def _write_at(self, offset: int, data: memoryview) -> int:
        _check_offset(offset)
        count = len(data)
        if count == 0:
            return 0
        end = offset + count
        buffered = len(self._buffer)
        if buffered and offset == self._buffer_offset + buffered and buffered + count <= self._buffer_bytes:
            self._buffer += data
        else:
            await self._send_buffer()
            if count >= self._buffer_bytes:
                with os_errors(self.name):
                    await self._fs.storage.write(self.inode.id, self._layout, offset, data)
            else:
                self._buffer_offset = offset
                self._buffer = bytearray(data)
        self._length = max(self._length, end)
        self._hint = max(self._hint, end)
        self._unsynced = True
        if self._buffer and len(self._buffer) >= self._buffer_bytes:
            await self._send_buffer()
        return count

    async def _send_buffer(self) -> None:
        """Write the buffer to storage (one write, split by chunk and sent in parallel)."""
        if not self._buffer:
            return
        data, offset = self._buffer, self._buffer_offset
        with os_errors(self.name):
            await self._fs.storage.write(self.inode.id, self._layout, offset, data)
        self._buffer = bytearray()

    # ------------------------------------------------------------------ position and length

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position (SEEK_SET, SEEK_CUR, SEEK_END); returns it. A position past the end
        is allowed (a later write leaves a hole that reads as zeros)."""
        async with self._lock:
            if self.closed:
                raise closed_file()
            if whence == os.SEEK_SET:
                target = offset
            elif whence == os.SEEK_CUR:
                target = self._position + offset
            elif whence == os.SEEK_END:
                target = self._length + offset
            else:
                raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
            _check_offset(target)
            self._position = target
            return target

    async def truncate(self, size: int | None = None) -> int:
        """Cut or extend the file to ``size`` bytes (default: the position); meta changes the
        length and the chunks. Returns ``size``; the position does not move."""
        async with self._lock:
            self._check(write=True)
            size = self._position if size is None else size
            _check_offset(size)
            await self._send_buffer()
            with os_errors(self.name):
                inode = await self._fs.meta.set_attr(self.name, length=size)
            if inode.id != self.inode.id:  # the path names another file now
                raise OSError(errno.ESTALE, "the file was renamed or replaced since it was opened", self.name)
            self._length = size
            self._hint = min(self._hint, size)
            return size

    # ------------------------------------------------------------------ flush, fsync, close

    async def flush(self) -> None:
        """Send buffered writes to storage and report this handle's length to meta, so that
        files opened from now on see them."""
        async with self._lock:
            if self.closed:
                return
            await self._sync()

    async def fsync(self) -> None:
        """``flush``: storage acknowledges a write once every replica of its chain has it, so a
        flushed write is as durable as the storage targets make it."""
        async with self._lock:
            self._check()
            await self._sync()

    async def _sync(self) -> None:
        if not self._open_mode.writable:
            return
        await self._send_buffer()
        if self._unsynced:
            with os_errors(self.name):
                inode = await self._fs.meta.sync(
                    self.inode.id, session_id=self._session, length_hint=self._hint or None, wrote=True
                )
            self._unsynced = False
            self._length = max(self._length, inode.length)

    async def close(self) -> None:
        """Send buffered writes, report the length and end the write session. A second close
        does nothing. When sending the buffer fails, the session still ends and the error is
        raised. Shielded from cancellation (bounded by a minute: TimeoutError beyond)."""
        with trio.CancelScope(shield=True, deadline=trio.current_time() + _CLOSE_TIMEOUT_S) as scope:
            async with self._lock:
                if self.closed:
                    return
                self.closed = True
                if not self._open_mode.writable:
                    return
                try:
                    await self._send_buffer()
                finally:
                    with os_errors(self.name):
                        await self._fs.meta.close(
                            self.inode.id,
                            self._session,
                            length_hint=self._hint or None,
                            wrote=self._unsynced,
                        )
        if scope.cancelled_caught:
            raise TimeoutError(errno.ETIMEDOUT, f"closing took more than {_CLOSE_TIMEOUT_S} s", self.name)

    async def stat(self) -> os.stat_result:
        """The file's attributes from meta (its length as this handle knows it, if larger)."""
        self._check()
        with os_errors(self.name):
            inode: Inode = await self._fs.meta.stat_inode(self.inode.id)
        if self._length > inode.length:
            inode = msgspec.structs.replace(inode, length=self._length)
        return stat_result(inode)

    async def __aenter__(self) -> AsyncFile:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"pos={self._position} length={self._length}"
        return f"<threefs file {self.name!r} mode={self.mode!r} inode={self.inode.id} {state}>"


def _check_offset(offset: int) -> None:
    if not isinstance(offset, int):
        raise TypeError(f"an offset must be an int, not {type(offset).__name__}")
    if offset < 0:
        raise OSError(errno.EINVAL, f"negative offset: {offset}")
