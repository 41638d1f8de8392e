"""The trio ``AsyncFileSystem`` (``open_filesystem``) against a real cluster: files, many tasks
at once, read_ranges, walk, and a cancelled close that still ends the write session."""

from __future__ import annotations

import hashlib
import os

import pytest
import trio
from fs_cluster import CHUNK, cluster_in_thread

from client.connect import open_filesystem
from client.fs import AsyncFileSystem, FileSystemConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    with cluster_in_thread(tmp_path_factory.mktemp("fs-async")) as (_, config):
        yield config


async def test_async_files_and_namespace(config_file):
    async with open_filesystem(config_file, admin=True) as fs:
        assert isinstance(fs, AsyncFileSystem)
        await fs.makedirs("/async/x")
        data = os.urandom(4 * CHUNK + 123)
        async with await fs.open("/async/x/f", "wb") as f:
            await f.write(data[:1000])
            await f.write(data[1000:])
        async with await fs.open("/async/x/f", "r+b") as f:
            assert hashlib.sha256(await f.read()).digest() == hashlib.sha256(data).digest()
            assert await f.seek(CHUNK) == CHUNK
            await f.write(b"Z")
            assert await f.pread(2, CHUNK - 1) == data[CHUNK - 1 : CHUNK] + b"Z"
            assert (await f.stat()).st_size == len(data)
        assert (await fs.stat("/async/x/f")).st_size == len(data)
        assert await fs.listdir("/async/x") == ["f"]
        walked = [item async for item in fs.walk("/async")]
        assert walked == [("/async", ["x"], []), ("/async/x", [], ["f"])]
        assert await fs.read_ranges([("/async/x/f", CHUNK, 1), ("/async/x/f", 0, 2)]) == [b"Z", data[:2]]
        with pytest.raises(FileNotFoundError):
            await fs.open("/async/none")


async def test_many_tasks_write_and_read_at_once(config_file):
    config = FileSystemConfig(write_buffer_bytes=0)  # every write goes straight to storage
    async with open_filesystem(config_file, admin=True, config=config) as fs:
        await fs.makedirs("/tasks", exist_ok=True)
        contents = {f"/tasks/{n}": os.urandom(CHUNK // 2 + n * 1001) for n in range(12)}

        async def write(path: str) -> None:
            await fs.write_bytes(path, contents[path])

        async with trio.open_nursery() as nursery:
            for path in contents:
                nursery.start_soon(write, path)
        ranges = [(path, 0, len(data)) for path, data in contents.items()]
        assert await fs.read_ranges(ranges) == list(contents.values())


async def test_a_cancelled_close_still_ends_the_session(config_file):
    async with open_filesystem(config_file, admin=True) as fs:
        f = await fs.open("/cancelled", "wb")
        await f.write(b"data")
        with trio.CancelScope() as scope:
            scope.cancel()
            await f.close()  # shielded: runs to the end despite the cancellation
        assert f.closed
        assert await fs.read_bytes("/cancelled") == b"data"
