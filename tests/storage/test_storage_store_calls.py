"""Where a storage node runs its store calls: calls on one chunk run on the event loop while
such calls on that target were short lately (a moving average under ``inline_store_max_s``), in
a worker thread after slow ones, and come back once they are short again; the other calls
always run in a thread. Errors mark the target failed either way."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from storage_cluster import storage_config

from storage.components.targets import Target, TargetRegistry
from storage.state import StorageState
from storage.store.mem import MemChunkStore
from threefs.errors import Code, ThreeFSError


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
