"""Where a storage node runs its store calls: calls on one chunk run on the event loop while
such calls on that target were short lately (a moving average under ``inline_store_max_s``), in
a worker thread after slow ones, and come back once they are short again; the other calls
always run in a thread. Errors mark the target failed either way."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import trio
from storage_cluster import SECRET, Cluster, KeptMemStore, key, mgmtd_config, payload, storage_config

from mgmtd.app import MgmtdApp
from storage.components.targets import Target, TargetRegistry
from storage.state import StorageState
from storage.store.mem import MemChunkStore
from threefs.errors import Code, ThreeFSError
from threefs.kv import MemEngine
from threefs.rpc import RpcClient


def make_state(inline_store_max_s: float) -> tuple[StorageState, Target]:
    config = storage_config(1, "127.0.0.1:1", [1], inline_store_max_s=inline_store_max_s)
    state = StorageState(config, TargetRegistry(lambda path: MemChunkStore()), None, None)  # type: ignore[arg-type]
    return state, Target(1, Path("/nonexistent"), MemChunkStore())


def where(delay: float = 0.0) -> str:
    time.sleep(delay)
    return "loop" if threading.current_thread() is threading.main_thread() else "thread"


async def test_chunk_calls_follow_their_recent_duration():
    state, target = make_state(0.005)
    seen = [await state.store_call(target, where, chunk=True) for _ in range(3)]
    seen.append(await state.store_call(target, where, 0.05, chunk=True))  # the disk turns slow
    seen += [await state.store_call(target, where, 0.05, chunk=True) for _ in range(2)]
    seen += [await state.store_call(target, where, chunk=True) for _ in range(20)]
    assert seen[:4] == ["loop"] * 4  # measured only once it ran
    assert seen[4:6] == ["thread"] * 2
    assert seen[-1] == "loop"
    # reads keep their own average: the slow updates did not send them to threads
    assert await state.store_call(target, where, read=True, chunk=True) == "loop"


async def test_other_calls_and_a_zero_limit_always_use_threads():
    state, target = make_state(0.005)
    assert await state.store_call(target, where) == "thread"
    state, target = make_state(0.0)
    assert await state.store_call(target, where, chunk=True) == "thread"


@pytest.mark.parametrize("limit", [0.005, 0.0], ids=["loop", "thread"])
async def test_an_io_error_marks_the_target_failed(limit):
    state, target = make_state(limit)

    def broken() -> None:
        raise OSError(5, "Input/output error")

    with pytest.raises(ThreeFSError) as failed:
        await state.store_call(target, broken, chunk=True)
    assert failed.value.code == Code.STORAGE_IO_ERROR
    with pytest.raises(ThreeFSError) as offline:
        await state.store_call(target, where, chunk=True)
    assert offline.value.code == Code.STORAGE_TARGET_OFFLINE


def test_the_limit_is_checked():
    with pytest.raises(ThreeFSError, match="inline_store_max_s"):
        storage_config(1, "127.0.0.1:1", [1], inline_store_max_s=-1)


@pytest.mark.parametrize(("wait_for_disk", "expected"), [(True, "loop"), (False, "thread")])
async def test_larger_reads_stay_off_the_loop_when_reads_must_not_wait_for_the_disk(
    monkeypatch, wait_for_disk, expected
):
    """A read over ``inline_read_max_bytes`` runs on the loop while reads are short, except
    with ``inline_reads_wait_for_disk`` false (rotating disks), where it always takes a thread."""
    seen: list[str] = []
    read = KeptMemStore.read

    def recording_read(self, *args, **kwargs):
        seen.append(where())
        return read(self, *args, **kwargs)

    monkeypatch.setattr(KeptMemStore, "read", recording_read)
    async with trio.open_nursery() as nursery:
        mgmtd = await nursery.start(MgmtdApp(mgmtd_config(), SECRET, MemEngine()).run)
        async with RpcClient(SECRET) as rpc:
            cluster = Cluster(nursery, rpc, f"127.0.0.1:{mgmtd.port}")
            await cluster.start_node(1, inline_read_max_bytes=0, inline_reads_wait_for_disk=wait_for_disk)
            await cluster.create_chain(1, [101])
            await cluster.write(key(0), payload(1))
            seen.clear()
            result, data = await cluster.read(101, key(0))
            assert result.code == 0 and data == payload(1)
        nursery.cancel_scope.cancel()
    assert seen == [expected]
