"""The data files of a ``DiskChunkStore``: naming, creating, copying, and recovery at open.

The layout and the crash ordering these helpers serve are described in ``storage.store.disk``.
"""

from __future__ import annotations

import errno
import os
import struct

from crc32c import crc32c

from storage.store import rules
from storage.store.interface import ChunkId, ChunkMeta, ChunkState
from storage.store.meta_db import MetaDb
from threefs.errors import Code, ThreeFSError

__all__ = ["chunk_file", "copy_prefix", "create_file", "fsync_dir", "os_error", "recover", "unlink_quiet"]

_KEY = struct.Struct("<QI")
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
_COPY_FALLBACK_ERRNOS = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP)
_BLOCK = 4 << 20


def chunk_file(root: str, chunk_id: ChunkId, version: int) -> str:
    """The path of version ``version`` of ``chunk_id`` under target directory ``root``."""
    fan = crc32c(_KEY.pack(chunk_id.inode, chunk_id.index)) & 0xFFFF
    name = f"{chunk_id.inode:016x}.{chunk_id.index:08x}.{version:x}"
    return f"{root}/data/{fan >> 8:02x}/{fan & 0xFF:02x}/{name}"


def os_error(exc: OSError, doing: str) -> ThreeFSError:
    """STORAGE_NO_SPACE for a full disk or quota, STORAGE_IO_ERROR for anything else."""
    code = Code.STORAGE_NO_SPACE if exc.errno in (errno.ENOSPC, errno.EDQUOT) else Code.STORAGE_IO_ERROR
    return ThreeFSError(code, f"{doing}: {exc}")


def unlink_quiet(path: str) -> None:
    """Delete ``path`` if it exists. Other failures are ignored: the file is then an orphan,
    deleted at the next open."""
    try:
        os.unlink(path)
    except OSError:
        pass


def fsync_dir(path: str) -> None:
    """Make the entries of directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dir(path: str, fsync: bool) -> None:
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    if fsync:
        fsync_dir(os.path.dirname(path))


def create_file(path: str, *, fsync_dirs: bool) -> int:
    """Create (or truncate) ``path`` for writing, making its fan-out directories on first use
    (made durable when ``fsync_dirs``). Returns the descriptor; the caller closes it."""
    try:
        return os.open(path, _CREATE_FLAGS, 0o644)
    except FileNotFoundError:
        leaf = os.path.dirname(path)
        _make_dir(os.path.dirname(leaf), fsync_dirs)
        _make_dir(leaf, fsync_dirs)
        return os.open(path, _CREATE_FLAGS, 0o644)


def copy_prefix(source: str, dest_fd: int, count: int) -> None:
    """Copy bytes ``[0, count)`` of file ``source`` to the same offsets of ``dest_fd``, in the
    kernel (``copy_file_range``, a reflink where the file system shares extents) when it can.
    Raises OSError, EIO when ``source`` is shorter than ``count``."""
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        copied = 0
        try:
            while copied < count:
                step = os.copy_file_range(src, dest_fd, count - copied, copied, copied)
                if step == 0:
                    raise OSError(errno.EIO, f"{source} is shorter than {count} bytes")
                copied += step
        except OSError as exc:
            if exc.errno not in _COPY_FALLBACK_ERRNOS:
                raise
            while copied < count:
                block = os.pread(src, min(_BLOCK, count - copied), copied)
                if not block:
                    raise OSError(errno.EIO, f"{source} is shorter than {count} bytes") from exc
                done = 0
                while done < len(block):
                    done += os.pwrite(dest_fd, memoryview(block)[done:], copied + done)
                copied += len(block)
    finally:
        os.close(src)


def _file_matches(path: str, length: int, crc: int) -> bool:
    """Whether ``path`` holds exactly ``length`` bytes with checksum ``crc``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        if os.fstat(fd).st_size != length:
            return False
        running, offset = 0, 0
        while offset < length:
            block = os.pread(fd, min(_BLOCK, length - offset), offset)
            if not block:
                return False
            running = crc32c(block, running)
            offset += len(block)
        return running == crc
    finally:
        os.close(fd)


def recover(root: str, db: MetaDb) -> list[tuple[ChunkMeta, int]]:
    """Bring target ``root`` back to a consistent state after a crash and return its metadata
    rows ``(meta, committed_chain_version)``: pending versions whose file is missing, of the
    wrong size or checksum are discarded; files the metadata does not name are deleted."""
    rows: list[tuple[ChunkMeta, int]] = []
    expected: set[str] = set()
    try:
        for meta, committed_chain_version in db.load():
            chunk_id = meta.chunk_id
            if meta.state == ChunkState.DIRTY:
                pending = chunk_file(root, chunk_id, meta.update_version)
                if _file_matches(pending, meta.pending_length, meta.pending_crc32c):
                    expected.add(pending)
                elif meta.commit_version == 0:
                    db.delete(chunk_id)
                    continue
                else:
                    meta = rules.aborted_meta(meta, committed_chain_version)
                    db.put(meta, committed_chain_version)
            if meta.commit_version > 0:
                expected.add(chunk_file(root, chunk_id, meta.commit_version))
            rows.append((meta, committed_chain_version))
        _remove_unexpected(os.path.join(root, "data"), expected)
    except OSError as exc:
        raise os_error(exc, f"recover {root}") from exc
    return rows


def _remove_unexpected(directory: str, expected: set[str]) -> None:
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                _remove_unexpected(entry.path, expected)
            elif entry.path not in expected:
                os.unlink(entry.path)
