"""``OpenFile`` read-ahead with a storage stand-in: the window, the background prefetch of the
next window, and that nothing kept outlives a write, a truncate or a new open, even when it
was in flight at the time (client/fuse/files.py)."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing
from open_file_stubs import file_inode

from client.fuse.files import OpenFile
from threefs.errors import Code, ThreeFSError
from threefs.layout import Layout
from threefs.wire.meta import Inode

WINDOW = 64 << 10
BUFFER = 16 << 10
READ = 8 << 10


def _inode(length: int) -> Inode:
    return file_inode(9, length)


class GatedStorage:
    """Keeps the file's bytes. ``read_into`` (what read-ahead uses) takes the bytes at once but,
    while ``hold`` is set, answers only at the next ``release``; every storage read is recorded
    as ``(kind, offset, size)``."""

    def __init__(self, content: bytes) -> None:
        self.content = bytearray(content)
        self.hold = False
        self.gate = trio.Event()
        self.reads: list[tuple[str, int, int]] = []
        self.fail_next_read_into = False

    def release(self, *, keep_holding: bool = False) -> None:
        """Let the read-aheads waiting now finish (and, unless ``keep_holding``, all later ones)."""
        self.hold = keep_holding
        self.gate.set()
        self.gate = trio.Event()

    async def write(self, inode: int, layout: Layout, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if len(self.content) < end:
            self.content += bytes(end - len(self.content))
        self.content[offset:end] = data

    async def read(self, inode: int, layout: Layout, offset: int, size: int) -> bytes:
        self.reads.append(("read", offset, size))
        return bytes(self.content[offset : offset + size]).ljust(size, b"\0")

    async def read_into(self, inode: int, layout: Layout, offset: int, view: memoryview) -> int:
        self.reads.append(("read_into", offset, len(view)))
        data = bytes(self.content[offset : offset + len(view)]).ljust(len(view), b"\0")  # read now,
        if self.hold:  # answered later: the bytes are those of when the read arrived
            await self.gate.wait()
        if self.fail_next_read_into:
            self.fail_next_read_into = False
            raise ThreeFSError(Code.STORAGE_IO_ERROR, "injected")
        view[:] = data
        return len(view)


def _file(storage: GatedStorage, nursery: trio.Nursery, length: int) -> OpenFile:
    return OpenFile(_inode(length), storage, BUFFER, WINDOW, nursery=nursery)  # type: ignore[arg-type]


def _content(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


async def test_sequential_reads_prefetch_the_next_window_in_the_background() -> None:
    data = _content(4 * WINDOW)
    storage = GatedStorage(data)
    async with trio.open_nursery() as nursery:
        file = _file(storage, nursery, len(data))
        got = bytearray()
        for offset in range(0, len(data), READ):
            got += await file.read(offset, READ)
            await trio.testing.wait_all_tasks_blocked()
        assert bytes(got) == data
    # one synchronous window, then each later window fetched ahead, never twice
    assert storage.reads == [("read_into", k * WINDOW, WINDOW) for k in range(4)]


async def test_prefetch_starts_at_half_the_window_and_a_read_inside_it_waits_for_it() -> None:
    data = _content(2 * WINDOW)
    storage = GatedStorage(data)
    async with trio.open_nursery() as nursery:
        file = _file(storage, nursery, len(data))
        for offset in range(0, WINDOW // 2 - READ, READ):
            await file.read(offset, READ)
        await trio.testing.wait_all_tasks_blocked()
        assert storage.reads == [("read_into", 0, WINDOW)]  # not yet half
        storage.hold = True
        await file.read(WINDOW // 2 - READ, READ)
        await trio.testing.wait_all_tasks_blocked()
        assert storage.reads[-1] == ("read_into", WINDOW, WINDOW)  # prefetch in flight
        got: list[bytes] = []

        async def reader() -> None:
            got.append(await file.read(WINDOW, READ))

        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []  # waits for the prefetch rather than reading again
        storage.release()
    assert got == [data[WINDOW : WINDOW + READ]]
    assert len(storage.reads) == 2


async def test_after_a_jump_the_prefetch_follows_the_new_window() -> None:
    data = _content(6 * WINDOW)
    storage = GatedStorage(data)
    async with trio.open_nursery() as nursery:
        file = _file(storage, nursery, len(data))
        for offset in range(0, WINDOW // 2 + READ, READ):
            await file.read(offset, READ)
        await trio.testing.wait_all_tasks_blocked()
        assert storage.reads[-1] == ("read_into", WINDOW, WINDOW)
        base = 3 * WINDOW
        for offset in range(base, base + WINDOW // 2 + 2 * READ, READ):
            assert await file.read(offset, READ) == data[offset : offset + READ]
        await trio.testing.wait_all_tasks_blocked()
        assert storage.reads[-2:] == [
            ("read_into", base + READ, WINDOW),
            ("read_into", base + READ + WINDOW, WINDOW),
        ]
        offset = base + READ + WINDOW
        assert await file.read(offset, READ) == data[offset : offset + READ]
        assert storage.reads[-1] == ("read_into", base + READ + WINDOW, WINDOW)  # the prefetch answered


@pytest.mark.parametrize("drop", ["write", "truncate", "open"])
async def test_a_prefetch_in_flight_at_a_drop_is_thrown_away(drop: str) -> None:
    """A write, truncate or new open while the next window is on its way: the window fetched
    before must not answer a later read."""
    data = _content(2 * WINDOW)
    storage = GatedStorage(data)
    async with trio.open_nursery() as nursery:
        file = _file(storage, nursery, len(data))
        for offset in range(0, WINDOW // 2, READ):
            await file.read(offset, READ)
        storage.hold = True
        await file.read(WINDOW // 2, READ)
        await trio.testing.wait_all_tasks_blocked()
        assert storage.reads[-1] == ("read_into", WINDOW, WINDOW)
        new = b"N" * READ
        if drop == "write":
            await file.write(WINDOW, new)
            await file.flush()
        else:
            storage.content[WINDOW : WINDOW + READ] = new  # another client's close
            if drop == "truncate":
                file.truncated(_inode(len(data)))
            else:
                file.forget_read_ahead()
        storage.release()  # the stale prefetch lands now
        await trio.testing.wait_all_tasks_blocked()
        assert await file.read(WINDOW, READ) == new
        assert await file.read(WINDOW + READ, READ) == data[WINDOW + READ : WINDOW + 2 * READ]


@pytest.mark.parametrize("drop", ["write", "open"])
async def test_a_window_filled_across_a_drop_is_not_kept(drop: str) -> None:
    """The first window is being fetched (the read waits for it) when a write or a new open
    drops what is kept: the read gets its bytes, but the window is not kept for later reads."""
    data = _content(2 * WINDOW)
    storage = GatedStorage(data)
    async with trio.open_nursery() as nursery:
        file = _file(storage, nursery, len(data))
        storage.hold = True
        nursery.start_soon(file.read, 0, READ)
        await trio.testing.wait_all_tasks_blocked()
        assert storage.reads == [("read_into", 0, WINDOW)]
        new = b"N" * READ
        if drop == "write":
            await file.write(READ, new)
            await file.flush()
        else:
            storage.content[READ : 2 * READ] = new
            file.forget_read_ahead()
        storage.release()
        await trio.testing.wait_all_tasks_blocked()
        assert await file.read(READ, READ) == new


async def test_a_failed_prefetch_leaves_the_read_to_fetch_its_bytes() -> None:
    data = _content(2 * WINDOW)
    storage = GatedStorage(data)
    async with trio.open_nursery() as nursery:
        file = _file(storage, nursery, len(data))
        await file.read(0, READ)
        storage.fail_next_read_into = True
        await file.read(WINDOW // 2, READ)  # not sequential: served from the window, starts a prefetch
        await trio.testing.wait_all_tasks_blocked()
        assert storage.reads[-1] == ("read_into", WINDOW, WINDOW)
        assert await file.read(WINDOW, READ) == data[WINDOW : WINDOW + READ]


@pytest.mark.parametrize("seed", range(6))
async def test_concurrent_readers_and_writers_always_read_the_latest_bytes(seed: int) -> None:
    """Random sequential runs, random reads, writes, truncates and reopens, with storage
    answering read-ahead late and several readers at once (as the kernel's read-ahead sends
    them): every read returns the bytes of the shadow copy at the time it started, and no two
    windows ever share a buffer."""
    rng = random.Random(seed)
    size = 6 * WINDOW
    shadow = bytearray(_content(size, seed))
    storage = GatedStorage(bytes(shadow))
    async with trio.open_nursery() as nursery:
        file = _file(storage, nursery, size)

        async def check_read(offset: int, want: bytes) -> None:
            got = await file.read(offset, len(want))
            assert got == want, f"seed {seed}: read at {offset} returned other bytes"

        for _ in range(300):
            action = rng.random()
            if action < 0.55:  # a sequential run, reads overlapping in time
                start = rng.randrange(0, size - 8 * READ, READ)

                async def run(start: int = start) -> None:
                    async with trio.open_nursery() as readers:
                        for k in range(8):
                            offset = start + k * READ
                            readers.start_soon(check_read, offset, bytes(shadow[offset : offset + READ]))
                            if rng.random() < 0.3:
                                await trio.testing.wait_all_tasks_blocked()

                async def answer_late() -> None:  # storage answers once every reader waits
                    while True:
                        await trio.testing.wait_all_tasks_blocked()
                        storage.release(keep_holding=storage.hold)

                async with trio.open_nursery() as outer:
                    outer.start_soon(answer_late)
                    await run()
                    outer.cancel_scope.cancel()
            elif action < 0.7:
                if storage.hold:
                    storage.release()
                else:
                    storage.hold = True
            elif action < 0.85:
                storage.release()
                offset = rng.randrange(0, size - READ)
                data = rng.randbytes(rng.randrange(1, READ))
                await file.write(offset, data)
                await file.flush()
                shadow[offset : offset + len(data)] = data
            elif action < 0.93:
                storage.content[:] = shadow  # the same bytes, as another client's close left them
                file.forget_read_ahead()
            else:
                storage.release()
                offset = rng.randrange(0, size - READ)
                await check_read(offset, bytes(shadow[offset : offset + READ]))
            await trio.testing.wait_all_tasks_blocked()
            buffers = [id(b) for b in file._spare]
            if file._ahead_buffer is not None:
                buffers.append(id(file._ahead_buffer))
            if file._prefetch is not None:
                buffers.append(id(file._prefetch.buffer))
            assert len(buffers) == len(set(buffers)), "a buffer is both kept and spare"
        storage.release()
