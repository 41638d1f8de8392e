"""``read_ranges``: many (path, offset, length) ranges of many files in one batch, for data
loaders and KV-cache lookups: one meta BatchStat for the distinct paths, then one
``StorageClient.read_chunks`` for every chunk piece of every range (one BatchRead per storage
node, all in parallel)."""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from client.chunk_io import ChunkRead
from client.fs.errors import os_error, os_errors
from threefs.errors import Code, ThreeFSError
from threefs.layout import Layout, split_range, stripe_positions
from threefs.wire.meta import Inode, InodeType
from threefs.wire.storage import ChunkKey

if TYPE_CHECKING:
    from client.fs.async_fs import AsyncFileSystem

__all__ = ["read_ranges"]


async def read_ranges(fs: AsyncFileSystem, ranges: Sequence[tuple[str, int, int]]) -> list[bytes]:
    """See ``AsyncFileSystem.read_ranges`` (paths already absolute)."""
    for path, offset, length in ranges:
        if offset < 0 or length < 0:
            raise OSError(errno.EINVAL, f"negative offset or length: {offset}, {length}", path)
    if sum(length for _, _, length in ranges) > fs.config.read_ranges_max_bytes:
        raise OSError(errno.EINVAL, f"read_ranges asks for more than {fs.config.read_ranges_max_bytes} bytes")
    paths = list(dict.fromkeys(path for path, _, _ in ranges))
    if not paths:
        return []
    with os_errors(paths[0] if len(paths) == 1 else None):
        stats = await fs.meta.batch_stat(paths=paths)
    inodes: dict[str, Inode] = {}
    for path, inode, code in zip(paths, stats.inodes, stats.codes, strict=True):
        if inode is None:
            raise os_error(ThreeFSError(Code(code or Code.META_NOT_FOUND), "stat failed"), path)
        if inode.type != InodeType.FILE or inode.layout is None:
            raise os_error(ThreeFSError(Code.META_IS_DIRECTORY, "not a regular file"), path)
        inodes[path] = inode

    resolvers: dict[Layout, Callable[[int], int]] = {}
    buffers: list[bytearray] = []
    reads: list[ChunkRead] = []
    for path, offset, length in ranges:
        inode = inodes[path]
        layout = inode.layout
        if layout is None:  # checked above; narrows the type
            raise os_error(ThreeFSError(Code.META_IS_DIRECTORY, "not a regular file"), path)
        count = min(length, max(inode.length - offset, 0))
        buffer = bytearray(count)
        buffers.append(buffer)
        if count == 0:
            continue
        if layout not in resolvers:
            with os_errors(path):
                resolvers[layout] = await _chain_resolver(fs, layout)
        chain_of = resolvers[layout]
        view = memoryview(buffer)
        for span in split_range(layout, offset, count):
            into = view[span.position : span.position + span.length]
            reads.append(
                ChunkRead(
                    chain_of(span.index), ChunkKey(inode.id, span.index), span.offset, span.length, into
                )
            )
    with os_errors():
        results = await fs.storage.read_chunks(reads)
    for read, data in zip(reads, results, strict=True):
        # A reply not received in place is copied; bytes past a chunk's end stay zero.
        if len(data) and read.into is not None and data.obj is not read.into.obj:
            read.into[: len(data)] = data
    return [bytes(buffer) for buffer in buffers]


async def _chain_resolver(fs: AsyncFileSystem, layout: Layout) -> Callable[[int], int]:
    """``chunk index -> chain id`` for ``layout`` (routing refreshed once when it lacks the
    layout's chain table version)."""
    routing = fs.storage.routing
    view = routing.view
    tables = view.routing.chain_tables.get(layout.table_id, [])
    if not any(t.version == layout.table_version for t in tables):
        view = await routing.refresh_on_mismatch(view.version)
    table = view.chain_table(layout.table_id, layout.table_version)
    slots = [table.chain_ids[p] for p in stripe_positions(layout, len(table.chain_ids))]
    stripe = layout.stripe_size
    return lambda index: slots[index % stripe]
