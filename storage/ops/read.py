"""BatchRead: many chunk reads on this node's targets, answered with one payload.

Each read names its replica (``target_id``) and is checked on its own, so one bad read does not
fail the batch: its result carries a STORAGE_* code and no bytes. A replica answers only while
SERVING (STORAGE_SYNCING while syncing, STORAGE_TARGET_OFFLINE otherwise), from its committed
version; a chunk with an update in flight (DIRTY) answers STORAGE_CHUNK_NOT_COMMITTED, except
at the read tail (the last SERVING target), whose committed version is the latest (CRAQ). A
missing chunk reads as a hole (code 0, no bytes). Reads run in worker threads, at most
``max_concurrent_reads`` at once per node.

A read of a whole chunk (offset 0, at least its length) from a store that keeps files is sent
with sendfile from the committed version's file, with the checksum stored when that version was
written: the node neither copies nor checksums the bytes, and the client checks them end to end
(disk and network). The worker thread first pulls the file's pages into the page cache (a
sendfile to /dev/null, no copy), so the event loop's sendfile does not wait for the disk. Other
reads are copied with pread and checksummed here.

A small read (at most ``inline_read_max_bytes``, 64 KiB by default) runs on the event loop: a
worker-thread hop costs more CPU than a small read itself (about 300 us per 4 KiB read on this
machine's two cores, GIL hand-offs included). With ``inline_reads_wait_for_disk`` (the default)
it runs there even when its pages must come from the disk: the loop then waits one small disk
read (tens of microseconds on SSD/NVMe); set it false on rotating disks, and only reads whose
pages are cached and whose file is open (``read_cached``, ``RWF_NOWAIT``) run on the loop.
Larger reads, and reads the loop cannot serve, go to a worker thread.
"""

from __future__ import annotations

import os

import trio
from crc32c import crc32c

from storage.components.chain_position import ChainPosition
from storage.state import StorageState
from storage.store.interface import ChunkId, ChunkState
from threefs.errors import Code, ThreeFSError
from threefs.rpc.transport import FileRegion, Part
from threefs.wire.mgmtd import PublicTargetState
from threefs.wire.storage import BatchReadRequest, BatchReadResponse, ReadIO, ReadResult

__all__ = ["batch_read"]


_dev_null = -1


def _warm(region: FileRegion) -> None:
    """Bring the region's pages into the page cache without copying them (blocks on the disk)."""
    global _dev_null
    if _dev_null < 0:
        _dev_null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    offset, end = region.offset, region.offset + region.length
    while offset < end:
        sent = os.sendfile(_dev_null, region.fd, offset, end - offset)
        if not sent:
            raise ThreeFSError(Code.STORAGE_IO_ERROR, "chunk file shorter than its metadata")
        offset += sent


async def batch_read(state: StorageState, request: BatchReadRequest) -> tuple[BatchReadResponse, list[Part]]:
    """The results in request order and the bytes of the successful ones, in order, as payload
    parts (file regions and buffers)."""
    results: list[ReadResult] = [ReadResult()] * len(request.reads)
    chunks: list[Part] = [b""] * len(request.reads)
    positions: dict[tuple[int, int, int], ChainPosition] = {}

    async def read_one(index: int, io: ReadIO) -> None:
        try:
            key = (io.chain_id, io.chain_version, io.target_id)
            position = positions.get(key)
            if position is None:
                state.targets.get(io.target_id)  # TARGET_NOT_FOUND before any routing lookup
                position = positions[key] = await state.position(io.chain_id, io.chain_version, io.target_id)
            data, checksum, version = await _read(state, io, position)
        except ThreeFSError as exc:
            results[index] = ReadResult(code=int(exc.code), message=exc.message)
            return
        chunks[index] = data
        results[index] = ReadResult(length=len(data), crc32c=checksum, commit_version=version)

    if len(request.reads) == 1:
        await read_one(0, request.reads[0])  # no nursery and task for the common single read
    else:
        async with trio.open_nursery() as nursery:
            for index, io in enumerate(request.reads):
                nursery.start_soon(read_one, index, io)
    return BatchReadResponse(results=results), [part for part in chunks if len(part)]


async def _read(state: StorageState, io: ReadIO, position: ChainPosition) -> tuple[Part, int, int]:
    """``(bytes or file region, their crc32c, commit version)`` of one read."""
    if position.state != PublicTargetState.SERVING:
        code = (
            Code.STORAGE_SYNCING
            if position.state == PublicTargetState.SYNCING
            else Code.STORAGE_TARGET_OFFLINE
        )
        raise ThreeFSError(code, f"target {io.target_id} is {position.state.name} in {position.describe()}")
    target = state.targets.get(io.target_id)
    store = target.store
    chunk_id = ChunkId(io.chunk.inode, io.chunk.index)
    is_tail = position.read_tail_id == io.target_id

    def not_committed(update_version: int) -> ThreeFSError:
        return ThreeFSError(
            Code.STORAGE_CHUNK_NOT_COMMITTED,
            f"chunk {io.chunk} has update {update_version} in flight on target {io.target_id}",
        )

    def read_file() -> tuple[Part, int, int] | None:
        """A whole chunk as a file region, or None to read it with ``read``."""
        opened = store.open_committed(chunk_id)
        if opened is None:
            return None
        meta, fd = opened
        region = FileRegion(fd, 0, meta.length)
        if meta.length > io.length:
            region.close()
            return None
        if meta.state == ChunkState.DIRTY and not is_tail:
            region.close()
            raise not_committed(meta.update_version)
        try:
            _warm(region)
        except OSError as exc:
            region.close()
            raise ThreeFSError(Code.STORAGE_IO_ERROR, f"read {io.chunk}: {exc}") from exc
        except BaseException:
            region.close()
            raise
        return region, meta.crc32c, meta.commit_version

    def read(cached_only: bool = False) -> tuple[Part, int, int] | None:
        """The read; with ``cached_only``, None instead of waiting for the disk."""
        if io.offset == 0 and not cached_only:
            whole = read_file()
            if whole is not None:
                return whole
        meta = store.get_meta(chunk_id)
        if meta is None:
            return b"", 0, 0
        if meta.state == ChunkState.DIRTY and not is_tail:
            raise not_committed(meta.update_version)
        try:
            if cached_only:
                cached = store.read_cached(chunk_id, io.offset, io.length)
                if cached is None:
                    return None
                data = cached
            else:
                data = store.read(chunk_id, io.offset, io.length)
        except ThreeFSError as exc:
            if exc.code == Code.STORAGE_CHUNK_NOT_FOUND:  # removed meanwhile: a hole
                return b"", 0, 0
            raise
        if io.offset == 0 and len(data) == meta.length:
            # A whole chunk: answer the checksum stored when it was written, so the client checks
            # the bytes end to end (disk and network), and this node skips a CRC pass. If a commit
            # slipped in between the two lookups, the data may be the newer version: recompute.
            after = store.get_meta(chunk_id)
            if after is not None and after.commit_version == meta.commit_version:
                return data, meta.crc32c, meta.commit_version
        return data, crc32c(data), meta.commit_version

    result = None
    config = state.config
    if io.length <= config.inline_read_max_bytes:
        result = state.store_call_inline(target, read, not config.inline_reads_wait_for_disk)
    if result is None:
        # a larger read may run on the loop too while reads are short, unless reads must never
        # wait for the disk there (rotating disks: inline_reads_wait_for_disk false)
        result = await state.store_call(target, read, read=True, chunk=config.inline_reads_wait_for_disk)
        assert result is not None  # only a cached-only read answers None
    state.metrics.read_ops.labels(str(io.target_id)).inc()
    state.metrics.read_bytes.labels(str(io.target_id)).inc(len(result[0]))
    return result
