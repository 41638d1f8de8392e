"""The ChunkStore conformance suite: the in-memory twin and the disk store must both pass it."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
from crc32c import crc32c

from storage.store import ChunkId, ChunkMeta, ChunkState, ChunkStore, DiskChunkStore, MemChunkStore
from threefs.errors import Code, ThreeFSError

CS = 64 << 10
A = ChunkId(1, 0)


@pytest.fixture(params=["mem", "disk"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[ChunkStore]:
    if request.param == "mem":
        chunk_store: ChunkStore = MemChunkStore()
    else:
        chunk_store = DiskChunkStore.open(tmp_path / "target", fsync=False, fd_cache_size=4)
    yield chunk_store
    chunk_store.close()


def prepare(
    store: ChunkStore,
    chunk_id: ChunkId,
    data: bytes = b"",
    offset: int = 0,
    *,
    version: int | None = None,
    chain_version: int = 1,
    chunk_size: int = CS,
    truncate_to: int | None = None,
    replace: bool = False,
) -> ChunkMeta:
    if version is None:
        meta = store.get_meta(chunk_id)
        version = (meta.commit_version if meta is not None else 0) + 1
    return store.prepare(
        chunk_id,
        update_version=version,
        chain_version=chain_version,
        chunk_size=chunk_size,
        offset=offset,
        data=data,
        truncate_to=truncate_to,
        replace=replace,
    )


def write(store: ChunkStore, chunk_id: ChunkId, data: bytes = b"", offset: int = 0, **kwargs) -> ChunkMeta:
    """Prepare then commit; checks the committed bytes against the returned meta."""
    pending = prepare(store, chunk_id, data, offset, **kwargs)
    meta = store.commit(chunk_id, pending.update_version)
    assert_consistent(store, chunk_id)
    return meta


def read_all(store: ChunkStore, chunk_id: ChunkId) -> bytes:
    meta = store.get_meta(chunk_id)
    assert meta is not None
    return store.read(chunk_id, 0, meta.chunk_size)


def assert_consistent(store: ChunkStore, chunk_id: ChunkId) -> None:
    meta = store.get_meta(chunk_id)
    assert meta is not None
    data = read_all(store, chunk_id)
    assert len(data) == meta.length
    assert crc32c(data) == meta.crc32c


def code(excinfo: pytest.ExceptionInfo[ThreeFSError]) -> Code:
    return excinfo.value.code


# ---- writes ----------------------------------------------------------------------------------


def test_first_write_is_dirty_until_committed(store: ChunkStore) -> None:
    pending = prepare(store, A, b"hello", chain_version=7)
    assert pending.state == ChunkState.DIRTY
    assert (pending.update_version, pending.commit_version, pending.length, pending.crc32c) == (1, 0, 0, 0)
    assert (pending.pending_length, pending.pending_crc32c) == (5, crc32c(b"hello"))
    assert (pending.chunk_size, pending.chain_version) == (CS, 7)
    assert store.get_meta(A) == pending
    assert store.read(A, 0, 100) == b""  # nothing committed yet
    meta = store.commit(A, 1)
    assert meta.state == ChunkState.COMMITTED
    assert (meta.update_version, meta.commit_version, meta.length, meta.crc32c) == (1, 1, 5, crc32c(b"hello"))
    assert (meta.pending_length, meta.pending_crc32c, meta.chain_version) == (0, 0, 7)
    assert store.read(A, 0, 100) == b"hello"
    assert store.read(A, 1, 3) == b"ell"


def test_gap_reads_as_zeros_append_and_overwrite(store: ChunkStore) -> None:
    write(store, A, b"abc", 10)
    assert read_all(store, A) == bytes(10) + b"abc"
    write(store, A, b"def", 13)  # append
    write(store, A, b"XY", 20)  # append past a gap
    assert read_all(store, A) == bytes(10) + b"abcdef" + bytes(4) + b"XY"
    write(store, A, b"__", 11)  # overwrite in the middle
    assert read_all(store, A) == bytes(10) + b"a__def" + bytes(4) + b"XY"
    write(store, A, b"!", 0)  # short write at 0 keeps the tail
    assert read_all(store, A) == b"!" + bytes(9) + b"a__def" + bytes(4) + b"XY"
    meta = write(store, A, b"z" * 30, 0)  # covers everything
    assert read_all(store, A) == b"z" * 30
    assert meta.commit_version == 6
    write(store, A, b"y" * 29, 0)  # one byte short of covering everything
    assert read_all(store, A) == b"y" * 29 + b"z"


def test_full_chunk_and_last_byte_writes(store: ChunkStore) -> None:
    data = os.urandom(CS)
    write(store, A, data)
    assert read_all(store, A) == data
    write(store, A, b"\x01", CS - 1)
    assert read_all(store, A) == data[:-1] + b"\x01"
    write(store, A, memoryview(bytearray(b"xy")), CS - 2)  # any bytes-like
    assert store.read(A, CS - 4, 4) == data[-4:-2] + b"xy"


def test_zero_length_write_does_not_extend(store: ChunkStore) -> None:
    write(store, A, b"abc")
    meta = write(store, A, b"", 1000)
    assert (meta.commit_version, meta.length) == (2, 3)
    assert read_all(store, A) == b"abc"


def test_truncate_cuts_and_extends(store: ChunkStore) -> None:
    write(store, A, b"0123456789")
    write(store, A, truncate_to=4)
    assert read_all(store, A) == b"0123"
    write(store, A, truncate_to=8)
    assert read_all(store, A) == b"0123" + bytes(4)
    write(store, A, b"ab", 6, truncate_to=7)  # write then cut
    assert read_all(store, A) == b"0123\x00\x00a"
    write(store, A, b"Z", 1, truncate_to=12)  # write then extend
    assert read_all(store, A) == b"0Z23\x00\x00a" + bytes(5)
    write(store, A, truncate_to=0)
    assert read_all(store, A) == b""
    write(store, ChunkId(2, 0), truncate_to=CS)  # truncate creates a chunk of zeros
    assert read_all(store, ChunkId(2, 0)) == bytes(CS)


def test_replace_is_exact_and_accepts_newer_versions(store: ChunkStore) -> None:
    write(store, A, b"0123456789")
    meta = write(store, A, b"ab", replace=True, version=5, chain_version=3)
    assert (meta.commit_version, meta.length, meta.chain_version) == (5, 2, 3)
    assert read_all(store, A) == b"ab"
    write(store, A, replace=True, version=6)
    assert read_all(store, A) == b""
    with pytest.raises(ThreeFSError) as excinfo:
        prepare(store, A, b"x", 1, replace=True, version=9)
    assert code(excinfo) == Code.STORAGE_BAD_OFFSET
    with pytest.raises(ThreeFSError) as excinfo:
        prepare(store, A, b"x", replace=True, version=6)
    assert code(excinfo) == Code.STORAGE_STALE_UPDATE


# ---- versions --------------------------------------------------------------------------------


def test_update_version_rules(store: ChunkStore) -> None:
    write(store, A, b"one")
    for version in (0, 1, 3):  # only commit_version + 1 is accepted
        with pytest.raises(ThreeFSError) as excinfo:
            prepare(store, A, b"x", version=version)
        assert code(excinfo) == Code.STORAGE_STALE_UPDATE
    with pytest.raises(ThreeFSError) as excinfo:
        store.commit(A, 2)  # nothing pending
    assert code(excinfo) == Code.STORAGE_STALE_UPDATE
    prepare(store, A, b"first", version=2)
    again = prepare(store, A, b"retry", version=2, chain_version=2)  # a retried forward wins
    assert again.pending_crc32c == crc32c(b"retry") and again.chain_version == 2
    with pytest.raises(ThreeFSError) as excinfo:
        store.commit(A, 3)
    assert code(excinfo) == Code.STORAGE_STALE_UPDATE
    meta = store.commit(A, 2)
    assert read_all(store, A) == b"retry"
    assert store.commit(A, 2) == meta  # idempotent
    assert store.commit(A, 1) == meta
    assert store.get_meta(A) == meta
    with pytest.raises(ThreeFSError) as excinfo:
        store.commit(ChunkId(9, 9), 1)
    assert code(excinfo) == Code.STORAGE_CHUNK_NOT_FOUND


def test_new_prepare_replaces_a_pending_version_of_another_number(store: ChunkStore) -> None:
    write(store, A, b"base")
    prepare(store, A, b"resync", replace=True, version=7)
    meta = prepare(store, A, b"!", 4, version=2)
    assert (meta.update_version, meta.pending_length) == (2, 5)
    with pytest.raises(ThreeFSError):
        store.commit(A, 7)
    store.commit(A, 2)
    assert read_all(store, A) == b"base!"
    assert store.space().used_bytes == 5


def test_reads_see_committed_version_while_dirty(store: ChunkStore) -> None:
    write(store, A, b"committed")
    prepare(store, A, b"PENDING-LONGER", chain_version=4)
    assert store.read(A, 0, 100) == b"committed"
    assert store.get_meta(A).state == ChunkState.DIRTY  # type: ignore[union-attr]
    store.commit(A, 2)
    assert store.read(A, 0, 100) == b"PENDING-LONGER"


def test_abort(store: ChunkStore) -> None:
    committed = write(store, A, b"keep", chain_version=2)
    prepare(store, A, b"drop", 4, chain_version=3)
    assert store.abort(A, 3) == store.get_meta(A)  # not the pending version: no-op
    assert store.get_meta(A).state == ChunkState.DIRTY  # type: ignore[union-attr]
    assert store.abort(A, 2) == committed  # chain version and update version restored
    assert store.get_meta(A) == committed
    assert store.abort(A, 2) == committed  # nothing pending: no-op
    assert read_all(store, A) == b"keep"
    prepare(store, ChunkId(5, 1), b"new")
    assert store.abort(ChunkId(5, 1), 1) is None  # a first write aborted: the chunk goes away
    assert store.get_meta(ChunkId(5, 1)) is None
    assert store.abort(ChunkId(5, 1), 1) is None
    assert store.space().chunk_count == 1 and store.space().used_bytes == 4


# ---- errors ----------------------------------------------------------------------------------


def test_read_past_end_and_bad_offsets(store: ChunkStore) -> None:
    write(store, A, b"0123456789")
    assert store.read(A, 8, 100) == b"89"
    assert store.read(A, 10, 5) == b""
    assert store.read(A, 500, 5) == b""
    assert store.read(A, 3, 0) == b""
    assert store.read(A, CS, 0) == b""
    for offset, length in ((-1, 1), (0, -1), (CS, 1), (1, CS), (CS + 1, 0)):
        with pytest.raises(ThreeFSError) as excinfo:
            store.read(A, offset, length)
        assert code(excinfo) == Code.STORAGE_BAD_OFFSET, (offset, length)
    with pytest.raises(ThreeFSError) as excinfo:
        store.read(ChunkId(1, 1), 0, 1)
    assert code(excinfo) == Code.STORAGE_CHUNK_NOT_FOUND


def test_bad_prepares_change_nothing(store: ChunkStore) -> None:
    before = write(store, A, b"abc")
    bad = [
        ({"data": b"xy", "offset": CS - 1}, Code.STORAGE_BAD_OFFSET),
        ({"data": b"x", "offset": -1}, Code.STORAGE_BAD_OFFSET),
        ({"truncate_to": CS + 1}, Code.STORAGE_BAD_OFFSET),
        ({"truncate_to": -1}, Code.STORAGE_BAD_OFFSET),
        ({"data": b"x", "chunk_size": 2 * CS}, Code.STORAGE_BAD_OFFSET),  # differs from the chunk's
    ]
    for kwargs, expected in bad:
        with pytest.raises(ThreeFSError) as excinfo:
            prepare(store, A, **kwargs)
        assert code(excinfo) == expected, kwargs
    for chunk_size in (CS - 1, (64 << 20) + 1):
        with pytest.raises(ThreeFSError) as excinfo:
            prepare(store, ChunkId(2, 0), b"x", chunk_size=chunk_size)
        assert code(excinfo) == Code.INVALID_ARG
    for chunk_id in (ChunkId(-1, 0), ChunkId(1 << 64, 0), ChunkId(0, 1 << 32)):
        with pytest.raises(ThreeFSError) as excinfo:
            prepare(store, chunk_id, b"x")
        assert code(excinfo) == Code.INVALID_ARG
    assert store.get_meta(A) == before
    assert store.list_meta() == [before]
    assert store.space().used_bytes == 3


def test_closed_store_refuses(store: ChunkStore) -> None:
    write(store, A, b"x")
    store.close()
    with pytest.raises(ThreeFSError) as excinfo:
        store.get_meta(A)
    assert code(excinfo) == Code.STORAGE_IO_ERROR
    store.close()  # twice is fine


# ---- remove, listing, space --------------------------------------------------------------------


def test_remove(store: ChunkStore) -> None:
    write(store, A, b"abc")
    prepare(store, A, b"pending")
    assert store.remove(A) is True
    assert store.remove(A) is False
    assert store.get_meta(A) is None
    with pytest.raises(ThreeFSError) as excinfo:
        store.read(A, 0, 1)
    assert code(excinfo) == Code.STORAGE_CHUNK_NOT_FOUND
    meta = write(store, A, b"again", chunk_size=2 * CS)  # a new chunk: versions and size start over
    assert (meta.commit_version, meta.chunk_size) == (1, 2 * CS)
    assert read_all(store, A) == b"again"
    assert store.space().used_bytes == 5


def test_list_meta_is_sorted_and_filters_by_inode(store: ChunkStore) -> None:
    ids = [ChunkId(2, 5), ChunkId((1 << 64) - 1, (1 << 32) - 1), ChunkId(2, 0), ChunkId(1, 3), ChunkId(0, 0)]
    for chunk_id in ids:
        write(store, chunk_id, chunk_id.index.to_bytes(4, "little"))
    prepare(store, ChunkId(2, 1), b"dirty")
    metas = store.list_meta()
    assert [m.chunk_id for m in metas] == sorted([*ids, ChunkId(2, 1)])
    assert [m.state for m in metas].count(ChunkState.DIRTY) == 1
    assert [m.chunk_id for m in store.list_meta(2)] == [ChunkId(2, 0), ChunkId(2, 1), ChunkId(2, 5)]
    assert store.list_meta(3) == []
    assert [m.chunk_id for m in store.list_meta((1 << 64) - 1)] == [ids[1]]


def test_space_accounting(store: ChunkStore) -> None:
    def used() -> tuple[int, int]:
        space = store.space()
        return space.used_bytes, space.chunk_count

    assert used() == (0, 0)
    prepare(store, A, b"x" * 100)
    assert used() == (100, 1)  # pending bytes count
    store.commit(A, 1)
    assert used() == (100, 1)
    prepare(store, A, b"y" * 50, 100)
    assert used() == (250, 1)  # committed 100 + pending 150
    store.commit(A, 2)
    write(store, ChunkId(1, 1), b"z" * 10)
    assert used() == (160, 2)
    prepare(store, A, truncate_to=10)
    store.abort(A, 3)
    assert used() == (160, 2)
    store.remove(A)
    assert used() == (10, 1)
    space = store.space()
    assert space.capacity_bytes >= space.free_bytes > 0


def test_mem_store_runs_out_of_space() -> None:
    store = MemChunkStore(capacity_bytes=100)
    write(store, A, b"x" * 60)
    with pytest.raises(ThreeFSError) as excinfo:
        prepare(store, A, b"y" * 50, 60)  # the pending copy needs 110 more
    assert code(excinfo) == Code.STORAGE_NO_SPACE
    assert store.get_meta(A).state == ChunkState.COMMITTED  # type: ignore[union-attr]
    assert store.space().free_bytes == 40


def test_reads_never_see_a_partial_update(store: ChunkStore) -> None:
    """Readers race commits of full-chunk versions, each a single repeated byte: every read
    returns one whole version."""
    write(store, A, bytes([0]) * CS)
    stop = threading.Event()
    bad: list[bytes] = []

    def reader() -> None:
        while not stop.is_set():
            data = store.read(A, 0, CS)
            if len(data) != CS or data.count(data[:1]) != CS:
                bad.append(data[:16])
            time.sleep(0)  # let the writer at the GIL: spinning readers starve it on a loaded host

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for version in range(2, 60):
            prepare(store, A, bytes([version % 256]) * CS)
            store.commit(A, version)
            prepare(store, A, b"\xff" * 7, 3)  # a partial update, aborted
            store.abort(A, version + 1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert bad == []
    assert read_all(store, A) == bytes([59]) * CS
