"""DiskChunkStore beyond the conformance suite: reopen, recovery at open, the descriptor cache."""

from __future__ import annotations

import errno
import os
import shutil
import threading
from pathlib import Path

import pytest
from crc32c import crc32c

from storage.store import ChunkId, ChunkState, DiskChunkStore
from storage.store.disk import chunk_file
from threefs.errors import Code, ThreeFSError

CS = 64 << 10
A = ChunkId(1, 0)
BIG = ChunkId((1 << 64) - 1, (1 << 32) - 1)


def prepare(store: DiskChunkStore, chunk_id: ChunkId, data: bytes, offset: int = 0, **kwargs):
    meta = store.get_meta(chunk_id)
    version = (meta.commit_version if meta is not None else 0) + 1
    kwargs.setdefault("chain_version", 1)
    return store.prepare(chunk_id, update_version=version, chunk_size=CS, offset=offset, data=data, **kwargs)


def write(store: DiskChunkStore, chunk_id: ChunkId, data: bytes, offset: int = 0, **kwargs):
    return store.commit(chunk_id, prepare(store, chunk_id, data, offset, **kwargs).update_version)


def data_files(root: Path) -> set[str]:
    return {str(path) for path in (root / "data").rglob("*") if path.is_file()}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "target"


def test_reopen_keeps_committed_and_pending_versions(root: Path) -> None:
    store = DiskChunkStore.open(root, fsync=False)
    write(store, A, b"committed")
    write(store, BIG, b"big ids")
    prepare(store, A, b"PENDING", 2)
    write(store, ChunkId(3, 0), b"x" * 1000)
    prepare(store, ChunkId(3, 0), b"", truncate_to=10)
    prepare(store, ChunkId(4, 0), b"first write")
    metas, space = store.list_meta(), store.space()
    store.close()

    store = DiskChunkStore.open(root, fsync=True)
    assert store.list_meta() == metas
    assert (store.space().used_bytes, store.space().chunk_count) == (space.used_bytes, space.chunk_count)
    assert store.read(A, 0, 100) == b"committed"
    assert store.read(BIG, 0, 100) == b"big ids"
    store.commit(A, 2)
    assert store.read(A, 0, 100) == b"coPENDING"
    store.abort(ChunkId(3, 0), 2)
    assert store.read(ChunkId(3, 0), 0, CS) == b"x" * 1000
    store.commit(ChunkId(4, 0), 1)
    assert store.read(ChunkId(4, 0), 0, 100) == b"first write"
    store.close()
    assert len(data_files(root)) == 4  # one committed file per chunk, nothing left over


def test_orphan_files_are_removed_on_open(root: Path) -> None:
    store = DiskChunkStore.open(root, fsync=False)
    write(store, A, b"v1")
    write(store, A, b"v2")
    prepare(store, A, b"v3")
    store.close()
    kept = data_files(root)
    committed = chunk_file(str(root), A, 2)
    assert kept == {committed, chunk_file(str(root), A, 3)}
    orphans = [
        chunk_file(str(root), A, 1),  # a commit's old version, not yet deleted
        chunk_file(str(root), A, 4),  # a prepare that crashed before its metadata
        chunk_file(str(root), A, 3) + ".tmp",  # a re-prepare that crashed
        chunk_file(str(root), ChunkId(8, 8), 1),  # a removed chunk
        str(root / "data" / "stray"),
    ]
    for orphan in orphans:
        os.makedirs(os.path.dirname(orphan), exist_ok=True)
        shutil.copyfile(committed, orphan)
    store = DiskChunkStore.open(root, fsync=False)
    assert data_files(root) == kept
    assert store.read(A, 0, 10) == b"v2"
    assert store.commit(A, 3).length == 2
    assert store.read(A, 0, 10) == b"v3"
    store.close()


@pytest.mark.parametrize("damage", ["flip", "truncate", "extend", "delete"])
def test_damaged_pending_version_is_discarded_on_open(root: Path, damage: str) -> None:
    store = DiskChunkStore.open(root, fsync=False)
    committed = write(store, A, b"good data", chain_version=3)
    prepare(store, A, b"new data!", chain_version=4)
    prepare(store, ChunkId(2, 0), b"first")
    store.close()
    for chunk_id in (A, ChunkId(2, 0)):
        path = chunk_file(str(root), chunk_id, committed.commit_version + 1 if chunk_id == A else 1)
        content = Path(path).read_bytes()
        if damage == "flip":
            Path(path).write_bytes(bytes([content[0] ^ 1]) + content[1:])
        elif damage == "truncate":
            Path(path).write_bytes(content[:-1])
        elif damage == "extend":
            Path(path).write_bytes(content + b"\0")
        else:
            os.unlink(path)
    store = DiskChunkStore.open(root, fsync=False)
    assert store.get_meta(A) == committed  # back to the committed version, chain version restored
    assert store.read(A, 0, 100) == b"good data"
    assert store.get_meta(ChunkId(2, 0)) is None  # its only version was pending
    assert (store.space().used_bytes, store.space().chunk_count) == (9, 1)
    store.close()
    assert data_files(root) == {chunk_file(str(root), A, 1)}
    store = DiskChunkStore.open(root, fsync=False)  # the repair itself was durable
    assert store.list_meta() == [committed]
    store.close()


def test_intact_pending_version_survives_open(root: Path) -> None:
    store = DiskChunkStore.open(root, fsync=False)
    write(store, A, b"base")
    pending = prepare(store, A, b"+more", 4)
    store.close()
    store = DiskChunkStore.open(root, fsync=False)
    assert store.get_meta(A) == pending and pending.state == ChunkState.DIRTY
    assert store.commit(A, 2).crc32c == crc32c(b"base+more")
    store.close()


def test_descriptor_cache_follows_commits_and_removes(root: Path) -> None:
    store = DiskChunkStore.open(root, fsync=False, fd_cache_size=2)
    ids = [ChunkId(7, index) for index in range(5)]
    for chunk_id in ids:
        write(store, chunk_id, bytes([chunk_id.index]) * 100)
    for _ in range(2):  # more chunks than cached descriptors
        for chunk_id in ids:
            assert store.read(chunk_id, 0, 200) == bytes([chunk_id.index]) * 100
    write(store, ids[4], b"new", 0)  # ids[4] is cached: the commit must drop its descriptor
    assert store.read(ids[4], 0, 4) == b"new\x04"
    store.remove(ids[4])
    write(store, ids[4], b"again")  # same version number as before the remove
    assert store.read(ids[4], 0, 100) == b"again"
    store.close()


def test_committed_file_shorter_than_metadata_is_an_io_error(root: Path) -> None:
    store = DiskChunkStore.open(root, fsync=False)
    write(store, A, b"0123456789")
    os.truncate(chunk_file(str(root), A, 1), 4)
    assert store.read(A, 0, 4) == b"0123"
    with pytest.raises(ThreeFSError) as excinfo:
        store.read(A, 0, 10)
    assert excinfo.value.code == Code.STORAGE_IO_ERROR
    with pytest.raises(ThreeFSError) as excinfo:
        prepare(store, A, b"x", 3)  # a partial write copies the committed bytes
    assert excinfo.value.code == Code.STORAGE_IO_ERROR
    assert store.get_meta(A).state == ChunkState.COMMITTED  # type: ignore[union-attr]
    store.close()


def test_fsync_mode_and_large_chunk_paths(root: Path) -> None:
    """fsync=True end to end, over each way a prepare builds the pending file."""
    size = 4 << 20
    store = DiskChunkStore.open(root, fsync=True)
    data = os.urandom(size)

    def step(payload: bytes, offset: int = 0, **kwargs) -> None:
        meta = store.get_meta(A)
        version = meta.commit_version + 1 if meta else 1
        store.prepare(
            A, update_version=version, chain_version=1, chunk_size=size, offset=offset, data=payload, **kwargs
        )
        store.commit(A, version)

    step(data[: size // 2])  # new chunk
    step(data[size // 2 : size - 10], size // 2)  # append: copy the prefix, continue its crc
    step(b"", truncate_to=size)  # zero-extend
    step(b"mid", 1000)  # overwrite in the middle: read, apply, write
    expected = data[:1000] + b"mid" + data[1003 : size - 10] + bytes(10)
    assert store.read(A, 0, size) == expected
    assert store.get_meta(A).crc32c == crc32c(expected)  # type: ignore[union-attr]
    step(data)  # full chunk: nothing copied
    assert store.read(A, 0, size) == data
    store.close()


def test_disk_full_during_prepare_changes_nothing(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = DiskChunkStore.open(root, fsync=False)
    write(store, A, b"abc")
    pending = prepare(store, A, b"pending", 3)
    files = data_files(root)

    def disk_full(*args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", disk_full)
    for offset in (3, 0):  # a re-prepare of the pending version, then one over everything
        with pytest.raises(ThreeFSError) as excinfo:
            prepare(store, A, b"replacement", offset)
        assert excinfo.value.code == Code.STORAGE_NO_SPACE
    with pytest.raises(ThreeFSError):
        prepare(store, ChunkId(2, 0), b"new chunk")
    monkeypatch.undo()
    assert store.get_meta(A) == pending and store.get_meta(ChunkId(2, 0)) is None
    assert data_files(root) == files
    assert store.space().used_bytes == 3 + 10
    store.commit(A, 2)
    assert store.read(A, 0, 100) == b"abcpending"
    store.close()


def test_concurrent_updates_of_different_chunks(root: Path) -> None:
    store = DiskChunkStore.open(root, fsync=False, fd_cache_size=2)
    expected: dict[ChunkId, bytes] = {}

    def worker(index: int) -> None:
        chunk_id = ChunkId(5, index)
        content = b""
        for step in range(25):
            piece = bytes([step]) * (100 + index)
            offset = (step * 37) % 500
            write(store, chunk_id, piece, offset)
            content = content.ljust(offset, b"\0")[:offset] + piece + content[offset + len(piece) :]
            assert store.read(chunk_id, 0, CS) == content
        expected[chunk_id] = content

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(expected) == 4
    assert store.space().used_bytes == sum(len(content) for content in expected.values())
    metas = store.list_meta()
    store.close()
    store = DiskChunkStore.open(root, fsync=False)
    assert store.list_meta() == metas
    for chunk_id, content in expected.items():
        assert store.read(chunk_id, 0, CS) == content
    assert len(data_files(root)) == 4
    store.close()


def test_open_committed_gives_an_immutable_view_of_the_committed_version(root: Path) -> None:
    store = DiskChunkStore.open(root, fsync=False, fd_cache_size=1)
    assert store.open_committed(A) is None  # no such chunk
    prepare(store, A, b"pending only")
    assert store.open_committed(A) is None  # nothing committed yet
    store.commit(A, 1)
    for _ in range(2):  # the first open fills the descriptor cache, the second dups it
        meta, fd = store.open_committed(A)
        try:
            assert (meta.commit_version, meta.length) == (1, 12)
            assert os.pread(fd, 100, 0) == b"pending only" and meta.crc32c == crc32c(b"pending only")
        finally:
            os.close(fd)
    meta, fd = store.open_committed(A)
    try:
        write(store, A, b"NEW", 0)  # commit version 2: a new file; the open one still holds version 1
        prepare(store, A, b"", truncate_to=2)  # DIRTY: open_committed still answers version 2
        meta2, fd2 = store.open_committed(A)
        os.close(fd2)
        assert (meta2.commit_version, meta2.length, meta2.state) == (2, 12, ChunkState.DIRTY)
        store.remove(A)
        assert store.open_committed(A) is None
        assert os.pread(fd, 100, 0) == b"pending only"
    finally:
        os.close(fd)
    store.close()


def test_read_cached_serves_only_open_files_in_the_page_cache(root: Path) -> None:
    store = DiskChunkStore.open(root, fsync=False)
    data = bytes(range(256)) * 64  # 16 KiB
    write(store, A, data)
    assert store.read_cached(A, 0, 4096) is None  # its file is not open yet: no waiting on open()
    assert store.read(A, 100, 10) == data[100:110]  # opens and caches the descriptor
    assert store.read_cached(A, 4096, 4096) == data[4096:8192]
    assert store.read_cached(A, len(data) - 5, 100) == data[-5:]  # clipped like read
    assert store.read_cached(A, len(data), 100) == b""
    with pytest.raises(ThreeFSError) as caught:
        store.read_cached(ChunkId(9, 9), 0, 10)
    assert caught.value.code == Code.STORAGE_CHUNK_NOT_FOUND
    with pytest.raises(ThreeFSError) as caught:
        store.read_cached(A, -1, 10)
    assert caught.value.code == Code.STORAGE_BAD_OFFSET
    write(store, A, b"NEW", 0)  # a commit replaces the file: the old descriptor is not used
    assert store.read_cached(A, 0, 3) is None
    assert store.read(A, 0, 3) == b"NEW"
    assert store.read_cached(A, 0, 5) == b"NEW" + data[3:5]
    # pages dropped from the page cache: RWF_NOWAIT refuses to wait for the disk
    path = chunk_file(str(root), A, store.get_meta(A).commit_version)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    assert store.read_cached(A, 8192, 4096) is None  # (tmp_path is on a disk, not tmpfs)
    assert store.read(A, 8192, 4096) == data[8192:12288]
    store.close()
