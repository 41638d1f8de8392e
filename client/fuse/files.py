"""Open files of the mount: one ``OpenFile`` per inode (shared by every handle of this mount that
has it open) holding the write buffer and the length this mount knows, one ``Handle`` per open.

Writes: a write that continues the buffered range is appended to the buffer; any other write
first sends the buffer to storage. The buffer goes out in one large write (split by chunk and
sent in parallel by ``StorageClient``) when it is full, before a read of the same inode, on a
truncate, and on flush/fsync/release.

Write-behind: when ``OpenFiles.nursery`` is set (the daemon sets it), a full buffer (or a write
larger than the buffer) is sent by a background task and the write is answered at once, so
the next bytes are received while the previous ones travel the chain. At most ``write_behind``
bytes per file are in flight (a write waits for room), and a store never starts while one of
an overlapping range is in flight, so stores of the same bytes reach storage in write order.
A read, truncate, flush, fsync or release of the file first waits until nothing is in flight.
A failed background store makes the next write and every later flush, fsync and release of the
file fail with its error (close(2) and fsync(2) answer it, as on NFS): nothing acknowledged is
lost silently.

Length: meta learns where writes ended from ``sync`` (length hint) on flush, fsync and release
(which closes the write session); meanwhile this mount answers stat and bounds reads with
``max(meta's length, end of its own writes)``. A truncate through this mount sets both.

Read-ahead: a read that starts where the previous read of the file ended fetches up to
``readahead`` bytes (bounded by the length) in one storage call and keeps them (the window);
following sequential reads are answered from it. Once they have used half the window, the next
window is fetched in the background (prefetch), so a sequential reader rarely waits for storage;
a read inside the prefetch waits for it, then it becomes the window. The window and any prefetch
are dropped on every write, truncate, flush of buffered writes and new open of the file
(close-to-open: an open sees other clients' changes): a generation number, bumped by each drop,
makes a prefetch that was in flight at a drop be thrown away, so nothing kept is staler than the
open. Random reads fetch exactly what is asked. Each window owns its buffer and a buffer is
reused only once no fetch writes into it: a file read sequentially holds at most three
(the window, the prefetch, one spare), 12 MiB with the default 4 MiB.

Concurrency: ``OpenFile.lock`` is held across every buffer change and every storage write of
the buffer, so the buffer and ``written_end`` never change under a write in flight.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import trio

from client.storage import StorageClient
from threefs.layout import Layout
from threefs.wire.meta import Caller, Inode

__all__ = ["DirHandle", "Handle", "OpenFile", "OpenFiles"]


class OpenFile:
    """Per-inode state while this mount has the inode open (see the module docstring)."""

    def __init__(
        self,
        inode: Inode,
        storage: StorageClient,
        buffer_limit: int,
        readahead: int = 0,
        *,
        nursery: trio.Nursery | None = None,
        write_behind: int = 0,
    ) -> None:
        self.inode = inode
        self.nursery = nursery
        self.write_behind = write_behind if nursery is not None else 0
        self._in_flight: list[tuple[int, int]] = []  # ranges of background stores
        self._in_flight_bytes = 0
        self._store_done = trio.Event()  # set (and replaced) whenever a background store ends
        self.store_error: Exception | None = None  # of a background store: sticky
        self.storage = storage
        self.buffer_limit = buffer_limit
        self.readahead = readahead
        self._ahead_offset = 0
        self._ahead: memoryview | None = None  # the window: bytes kept from the last read-ahead
        self._ahead_buffer: bytearray | None = None  # what _ahead views
        self._spare: list[bytearray] = []  # at most one buffer no window or fetch uses (no memset per window)
        self._prefetch: _Prefetch | None = None  # the next window, fetched in the background
        self._generation = 0  # bumped whenever kept bytes are dropped
        self._filling = False  # a read-ahead is being received (one synchronous fill at a time)
        self._next_read = 0  # where a sequential read would start
        self.lock = trio.Lock()
        self.refs = 0
        self.meta_length = inode.length
        self.written_end = 0  # end of the writes through this mount since the last truncate
        self.dirty = False  # written since the last sync to meta
        self.buffer = bytearray()
        self.buffer_offset = 0

    @property
    def length(self) -> int:
        return max(self.meta_length, self.written_end)

    def seen(self, inode: Inode) -> None:
        """Meta answered with ``inode``: its attributes and length are the newest."""
        self.inode = inode
        self.meta_length = inode.length

    def forget_read_ahead(self) -> None:
        """Drop the window and any prefetch (a prefetch in flight is thrown away when it ends)."""
        self._generation += 1
        self._drop_prefetch()
        if self._ahead_buffer is not None:
            self._recycle(self._ahead_buffer)
        self._ahead, self._ahead_buffer = None, None

    def _drop_prefetch(self) -> None:
        """Nobody will take the prefetch: its buffer is spare now if it has ended, else when it
        ends (``_prefetch_task``)."""
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None and prefetch.done.is_set():
            self._recycle(prefetch.buffer)

    def _recycle(self, buffer: bytearray) -> None:
        if len(buffer) == self.readahead and not self._spare:
            self._spare.append(buffer)

    def _take_buffer(self) -> bytearray:
        return self._spare.pop() if self._spare else bytearray(self.readahead)

    def _install(self, buffer: bytearray, offset: int, view: memoryview) -> None:
        if self._ahead_buffer is not None:
            self._recycle(self._ahead_buffer)
        self._ahead_buffer, self._ahead_offset, self._ahead = buffer, offset, view

    def _from_window(self, offset: int, size: int) -> bytes | None:
        ahead = self._ahead
        start = offset - self._ahead_offset
        if ahead is not None and 0 <= start and start + size <= len(ahead):
            return bytes(ahead[start : start + size])
        return None

    async def write(self, offset: int, data: bytes) -> None:
        self.forget_read_ahead()
        async with self.lock:
            self._raise_store_error()
            end = offset + len(data)
            if self.buffer and offset == self.buffer_offset + len(self.buffer):
                self.buffer += data
            else:
                await self._flush_locked(behind=True)
                if len(data) >= self.buffer_limit:
                    await self._send(offset, data, behind=True)
                else:
                    self.buffer_offset = offset
                    self.buffer += data
            self.written_end = max(self.written_end, end)
            self.dirty = True
            if len(self.buffer) >= self.buffer_limit:
                await self._flush_locked(behind=True)

    @property
    def unsent(self) -> bool:
        """Bytes are buffered or on their way to storage (or a background store failed). A
        read must not go to storage while this holds: ``flush`` first."""
        return bool(self.buffer or self._in_flight or self.store_error)

    async def flush(self) -> None:
        """Send the buffer to storage and wait until nothing is in flight; raises the error of
        a failed background store (no-op when nothing is unsent)."""
        if self.unsent:
            async with self.lock:
                await self._flush_locked()
                await self._drain()
                self._raise_store_error()

    async def _flush_locked(self, *, behind: bool = False) -> None:
        """Send the buffer (lock held). Its bytes stay visible as unsent (in the buffer, then
        in flight) until storage has them; a failed synchronous store leaves them buffered."""
        if self.buffer:
            await self._send(self.buffer_offset, self.buffer, behind=behind, from_buffer=True)

    def _raise_store_error(self) -> None:
        if self.store_error is not None:
            raise self.store_error

    async def _wait_store_done(self) -> None:
        await self._store_done.wait()

    async def _drain(self) -> None:
        while self._in_flight:
            await self._wait_store_done()

    async def _send(
        self, offset: int, data: bytes | bytearray, *, behind: bool, from_buffer: bool = False
    ) -> None:
        """Store ``data`` at ``offset`` (lock held): in the background when ``behind`` and
        write-behind is on, else now. Waits for room and for overlapping stores first (see the
        module docstring). ``from_buffer``: ``data`` is the buffer, emptied once the bytes are
        registered in flight (so a reader never finds them in neither place)."""
        length = len(data)
        end = offset + length
        while self._in_flight and (
            self._in_flight_bytes + length > self.write_behind
            or any(start < end and offset < stop for start, stop in self._in_flight)
        ):
            await self._wait_store_done()
        self._raise_store_error()
        payload = bytes(data)
        span = (offset, end)
        self._in_flight.append(span)
        self._in_flight_bytes += length
        if from_buffer:
            self.buffer.clear()
        if behind and self.write_behind and self.nursery is not None:
            self.nursery.start_soon(self._store_task, span, payload)
            return
        try:
            await self._store(offset, payload)
        except BaseException:
            if from_buffer and not self.buffer:  # still unsent: keep it for the next flush
                self.buffer_offset, self.buffer[:] = offset, payload
            raise
        finally:
            self._end_store(span, length)

    async def _store_task(self, span: tuple[int, int], data: bytes) -> None:
        try:
            await self._store(span[0], data)
        except Exception as exc:  # surfaces at the next write, flush, fsync or release
            if self.store_error is None:
                self.store_error = exc
        finally:
            self._end_store(span, len(data))

    def _end_store(self, span: tuple[int, int], length: int) -> None:
        self._in_flight.remove(span)
        self._in_flight_bytes -= length
        done, self._store_done = self._store_done, trio.Event()
        done.set()

    async def _store(self, offset: int, data: bytes) -> None:
        layout = self.inode.layout
        if layout is None:
            raise OSError(22, f"inode {self.inode.id} has no layout")
        await self.storage.write(self.inode.id, layout, offset, data)

    async def read(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``offset``, bounded by the length (buffered bytes sent first;
        sequential reads served from read-ahead, see the module docstring)."""
        if self.unsent:
            self.forget_read_ahead()
            await self.flush()
        length = self.length
        layout = self.inode.layout
        if offset >= length or size <= 0 or layout is None:
            return b""
        size = min(size, length - offset)
        while True:
            kept = self._from_window(offset, size)
            if kept is not None:
                self._next_read = offset + size
                self._start_prefetch(length)
                return kept
            prefetch = self._prefetch
            if prefetch is None or not prefetch.covers(offset, size):
                break
            await prefetch.done.wait()
            if self._prefetch is prefetch:  # still wanted (not dropped, not taken by another read)
                self._prefetch = None
                if prefetch.error is not None:
                    break
                self._install(prefetch.buffer, prefetch.offset, prefetch.view)
        sequential = offset == self._next_read
        self._next_read = offset + size
        if not sequential or self.readahead <= size or self._filling:
            return await self.storage.read(self.inode.id, layout, offset, size)
        window = min(self.readahead, length - offset)
        generation = self._generation
        buffer = self._take_buffer()
        view = memoryview(buffer)[:window]
        self._filling = True
        try:
            await self.storage.read_into(self.inode.id, layout, offset, view)
        except BaseException:
            self._recycle(buffer)
            raise
        finally:
            self._filling = False
        data = bytes(view[:size])
        if generation == self._generation:  # nothing dropped the kept bytes meanwhile
            self._install(buffer, offset, view)
            self._start_prefetch(length)
        else:
            self._recycle(buffer)
        return data

    def _start_prefetch(self, length: int) -> None:
        """Fetch the window after this one in the background once reads have used half of it."""
        ahead = self._ahead
        if self.nursery is None or ahead is None or self.readahead <= 0:
            return
        start = self._ahead_offset + len(ahead)
        if self._prefetch is not None:
            if self._prefetch.offset == start:
                return  # already on its way
            self._drop_prefetch()  # of another window (the reader jumped): not wanted any more
        if start >= length or self._next_read - self._ahead_offset < len(ahead) // 2:
            return
        layout = self.inode.layout
        if layout is None:
            return
        buffer = self._take_buffer()
        window = min(self.readahead, length - start)
        prefetch = _Prefetch(start, buffer, memoryview(buffer)[:window])
        self._prefetch = prefetch
        self.nursery.start_soon(self._prefetch_task, prefetch, layout)

    async def _prefetch_task(self, prefetch: _Prefetch, layout: Layout) -> None:
        try:
            await self.storage.read_into(self.inode.id, layout, prefetch.offset, prefetch.view)
        except Exception as exc:  # the read that wanted these bytes reads them itself
            prefetch.error = exc
        finally:
            prefetch.done.set()
            if self._prefetch is not prefetch:  # dropped while in flight: nobody will take it
                self._recycle(prefetch.buffer)

    def truncated(self, inode: Inode) -> None:
        """A truncate (or O_TRUNC) through this mount set the length to ``inode.length``."""
        self.forget_read_ahead()
        self.seen(inode)
        self.written_end = min(self.written_end, inode.length)


@dataclass(eq=False)
class _Prefetch:
    """The window after the current one, being fetched (``done`` set when it ended)."""

    offset: int
    buffer: bytearray
    view: memoryview
    done: trio.Event = field(default_factory=trio.Event)
    error: Exception | None = None

    def covers(self, offset: int, size: int) -> bool:
        return self.offset <= offset and offset + size <= self.offset + len(self.view)


@dataclass
class Handle:
    """One open of a file: who opened it, how, and its meta write session ("" when read-only)."""

    fh: int
    file: OpenFile
    caller: Caller
    writable: bool
    session_id: bytes = b""


@dataclass
class DirHandle:
    """One open directory: entries as ``(name, attributes)`` fetched so far, page by page.
    A readdir offset is an index into ``entries``, which only grows while the handle is open,
    so an offset handed out never moves (no entry skipped or repeated); offset 0 starts over."""

    inode: Inode
    caller: Caller
    entries: list[tuple[bytes, object]] = field(default_factory=list)
    after: bytes = b""
    more: bool = True
    started: bool = False


class OpenFiles:
    """The handle tables of one mount."""

    def __init__(
        self, storage: StorageClient, buffer_limit: int, readahead: int = 0, write_behind: int = 0
    ) -> None:
        self.storage = storage
        self.buffer_limit = buffer_limit
        self.readahead = readahead
        self.write_behind = write_behind
        self.nursery: trio.Nursery | None = None  # set by the daemon: enables write-behind
        self.by_inode: dict[int, OpenFile] = {}
        self.handles: dict[int, Handle] = {}
        self.dirs: dict[int, DirHandle] = {}
        self._next_fh = itertools.count(1)

    def file(self, inode_id: int) -> OpenFile | None:
        return self.by_inode.get(inode_id)

    def length_of(self, inode: Inode) -> int | None:
        """The length this mount knows for ``inode`` when it has it open (else None); also
        records meta's answer."""
        file = self.by_inode.get(inode.id)
        if file is None:
            return None
        file.meta_length = inode.length
        return file.length

    def open(self, inode: Inode, caller: Caller, writable: bool, session_id: bytes) -> Handle:
        file = self.by_inode.get(inode.id)
        if file is None:
            file = self.by_inode[inode.id] = OpenFile(
                inode,
                self.storage,
                self.buffer_limit,
                self.readahead,
                nursery=self.nursery,
                write_behind=self.write_behind,
            )
        else:
            file.seen(inode)
            file.forget_read_ahead()  # close-to-open: a new open sees other clients' changes
        file.refs += 1
        handle = Handle(next(self._next_fh), file, caller, writable, session_id)
        self.handles[handle.fh] = handle
        return handle

    def close(self, handle: Handle) -> None:
        self.handles.pop(handle.fh, None)
        handle.file.refs -= 1
        if handle.file.refs <= 0:
            self.by_inode.pop(handle.file.inode.id, None)

    def open_dir(self, inode: Inode, caller: Caller) -> int:
        fh = next(self._next_fh)
        self.dirs[fh] = DirHandle(inode, caller)
        return fh
