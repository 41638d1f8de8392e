"""``OpenFile`` write-behind with a storage stand-in: background stores, the in-flight bound,
ordering of overlapping stores, read-your-writes, and sticky errors (client/fuse/files.py)."""

from __future__ import annotations

import errno

import pytest
import trio
import trio.testing
from open_file_stubs import file_inode

from client.fuse.files import OpenFile
from threefs.errors import Code, ThreeFSError
from threefs.layout import Layout

BUFFER = 64 << 10
INODE = file_inode(7)


class SlowStorage:
    """Keeps the file's bytes; every write waits until ``release`` lets it finish. Records the
    order in which writes started and finished and the most bytes in flight at once."""

    def __init__(self) -> None:
        self.content = bytearray()
        self.gate = trio.Event()
        self.started: list[int] = []
        self.finished: list[int] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.fail_next: ThreeFSError | None = None

    def release(self) -> None:
        self.gate.set()

    async def write(self, inode: int, layout: Layout, offset: int, data: bytes) -> None:
        self.started.append(offset)
        self.in_flight += len(data)
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
            if self.fail_next is not None:
                error, self.fail_next = self.fail_next, None
                raise error
            end = offset + len(data)
            if len(self.content) < end:
                self.content += bytes(end - len(self.content))
            self.content[offset:end] = data
            self.finished.append(offset)
        finally:
            self.in_flight -= len(data)

    async def read(self, inode: int, layout: Layout, offset: int, size: int) -> bytes:
        return bytes(self.content[offset : offset + size]).ljust(size, b"\0")


def _file(storage: SlowStorage, nursery: trio.Nursery, write_behind: int) -> OpenFile:
    return OpenFile(INODE, storage, BUFFER, 0, nursery=nursery, write_behind=write_behind)  # type: ignore[arg-type]


async def test_full_buffers_go_behind_within_the_bound() -> None:
    storage = SlowStorage()
    async with trio.open_nursery() as nursery:
        file = _file(storage, nursery, write_behind=2 * BUFFER)
        with trio.fail_after(5):
            await file.write(0, b"a" * BUFFER)  # answered while its store waits
            await file.write(BUFFER, b"b" * BUFFER)
        await trio.testing.wait_all_tasks_blocked()
        assert storage.started == [0, BUFFER] and storage.finished == []
        writer_done = trio.Event()

        async def third() -> None:
            await file.write(2 * BUFFER, b"c" * BUFFER)  # no room: waits for a store to end
            writer_done.set()

        nursery.start_soon(third)
        await trio.testing.wait_all_tasks_blocked()
        assert not writer_done.is_set() and len(storage.started) == 2
        storage.release()
        with trio.fail_after(5):
            await writer_done.wait()
            await file.flush()  # waits until nothing is in flight
        assert not file.unsent
        assert storage.content == b"a" * BUFFER + b"b" * BUFFER + b"c" * BUFFER
        assert storage.most_in_flight <= 2 * BUFFER


async def test_overlapping_store_waits_for_the_earlier_one() -> None:
    storage = SlowStorage()
    async with trio.open_nursery() as nursery:
        file = _file(storage, nursery, write_behind=8 * BUFFER)
        await file.write(0, b"1" * BUFFER)
        done = trio.Event()

        async def rewrite() -> None:
            await file.write(100, b"2" * BUFFER)  # overlaps the store in flight
            await file.flush()
            done.set()

        nursery.start_soon(rewrite)
        await trio.testing.wait_all_tasks_blocked()
        assert storage.started == [0]  # the overlapping store has not started
        storage.release()
        with trio.fail_after(5):
            await done.wait()
    assert storage.finished == [0, 100]
    assert storage.content == b"1" * 100 + b"2" * BUFFER


async def test_read_waits_for_stores_in_flight() -> None:
    storage = SlowStorage()
    async with trio.open_nursery() as nursery:
        file = _file(storage, nursery, write_behind=4 * BUFFER)
        await file.write(0, b"x" * BUFFER)
        got: list[bytes] = []

        async def reader() -> None:
            got.append(await file.read(10, 5))

        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []  # not answered from storage before the write landed
        storage.release()
    assert got == [b"xxxxx"]


async def test_failed_background_store_fails_next_write_and_every_flush() -> None:
    storage = SlowStorage()
    storage.fail_next = ThreeFSError(Code.STORAGE_NO_SPACE, "full")
    storage.release()
    async with trio.open_nursery() as nursery:
        file = _file(storage, nursery, write_behind=4 * BUFFER)
        await file.write(0, b"x" * BUFFER)  # accepted; its store fails in the background
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(ThreeFSError) as caught:
            await file.write(BUFFER, b"y")
        assert caught.value.code == Code.STORAGE_NO_SPACE and caught.value.errno == errno.ENOSPC
        for _ in range(2):  # sticky: fsync and then close both report it
            with pytest.raises(ThreeFSError):
                await file.flush()
    assert storage.content == b""


async def test_without_write_behind_every_full_buffer_is_waited_for() -> None:
    storage = SlowStorage()
    async with trio.open_nursery() as nursery:
        file = _file(storage, nursery, write_behind=0)
        blocked = trio.Event()

        async def writer() -> None:
            await file.write(0, b"z" * BUFFER)
            blocked.set()

        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        assert not blocked.is_set() and storage.started == [0]
        storage.release()
    assert storage.content == b"z" * BUFFER


@pytest.mark.parametrize("write_behind", [0, 4 * BUFFER])
async def test_read_never_overtakes_a_flush_in_progress(write_behind: int) -> None:
    """While the buffer is on its way to storage (sent, not yet stored), a read of the same
    file (the kernel's read-ahead, for one) waits for it: it must not read the old bytes."""
    storage = SlowStorage()
    async with trio.open_nursery() as nursery:
        file = _file(storage, nursery, write_behind=write_behind)
        await file.write(0, b"new!")  # buffered
        nursery.start_soon(file.flush)  # stuck in storage.write
        await trio.testing.wait_all_tasks_blocked()
        assert storage.started == [0] and file.unsent
        got: list[bytes] = []

        async def reader() -> None:
            got.append(await file.read(0, 4))

        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        storage.release()
    assert got == [b"new!"]
