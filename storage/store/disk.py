"""DiskChunkStore: one storage target's chunks in one directory, copy-on-write, crash-safe.

On-disk layout (``<target>`` is the directory given to ``DiskChunkStore.open``)::

    <target>/meta.sqlite3 (+ -wal, -shm)     chunk metadata (storage.store.meta_db.SCHEMA)
    <target>/data/<aa>/<bb>/<inode>.<index>.<version>
                                             one file per chunk version; inode 16 and index 8
                                             hex digits, version in hex; aabb = low 16 bits of
                                             crc32c(inode u64 LE, index u32 LE), so 65,536
                                             directories (made on first use, never removed)
                                             spread the chunks of every file
    <target>/data/<aa>/<bb>/<name>.tmp       a same-version re-prepare being written

A chunk has a file for its committed version (when ``commit_version`` > 0, even if empty) and, while
DIRTY, one for its pending version ``update_version``. A data file is never modified once its
version is recorded in the metadata: a prepare writes a new file (a full-chunk write or replace
writes only the new bytes; an append copies the committed prefix with ``copy_file_range`` and
continues its CRC; other writes read the committed bytes, apply the write and write the result),
so readers of the committed file never see a partial update.

Metadata is one row per chunk in SQLite (WAL), one transaction per prepare, commit, abort and
remove; it is read only at open, then served from an in-memory copy (about 300 bytes per chunk).

Crash ordering (the store survives SIGKILL at any instant; with ``fsync`` also power loss):

- prepare: write the pending file (fsync it and its directory when ``fsync``), THEN record the
  pending version (length, crc32c) in the metadata. A crash before the record leaves an orphan.
  A re-prepare of the version already pending writes ``<name>.tmp``, records the new checksum,
  then renames over the old pending file; a crash in between fails the check below.
- commit: one metadata transaction switches ``commit_version``, THEN the old committed file is
  deleted (a crash in between leaves an orphan).
- abort / remove: the metadata transaction, THEN the files are deleted.
- open: every file the metadata does not name is deleted (orphans, ``.tmp``); every pending
  version is verified (file present, size and crc32c equal to ``pending_length`` /
  ``pending_crc32c``) and discarded when it fails (the chunk goes back to COMMITTED at its old
  version, or disappears when it had no committed version). Committed files are not verified
  (that is a scrubber's job): their metadata was written only after they were complete.

``fsync`` (default True, what production configs use): data files, new directory entries and
each metadata transaction (synchronous=FULL) reach the disk before a call returns, so an
acknowledged update survives power loss. False relies on the page cache and synchronous=NORMAL:
it survives a process crash or SIGKILL (what the tests check) but not a kernel crash or power
loss; for tests and benchmarks.

Concurrency: updates of one chunk are serialized by the caller; updates of different chunks and
reads run concurrently. One lock guards the in-memory metadata and the cache of open committed
files (``fd_cache_size`` descriptors, reference-counted so a commit never closes a descriptor
under a reader); the metadata database has its own lock. Data I/O runs outside both locks.
"""

from __future__ import annotations

import errno
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import count

from crc32c import crc32c

from storage.store import rules
from storage.store.disk_files import (
    chunk_file,
    copy_prefix,
    create_file,
    fsync_dir,
    os_error,
    recover,
    unlink_quiet,
)
from storage.store.interface import ChunkId, ChunkMeta, ChunkState, ChunkStore, SpaceInfo
from storage.store.meta_db import MetaDb
from threefs.errors import Code, ThreeFSError

__all__ = ["DiskChunkStore", "chunk_file"]

_READ_ATTEMPTS = 4  # a read that races commits re-looks-up the committed file this many times
_RWF_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)  # Linux >= 4.14 (read_cached)


@dataclass(slots=True, frozen=True)
class _Entry:
    meta: ChunkMeta
    committed_chain_version: int  # abort restores it
    file_gen: int  # changes whenever the committed file changes: keys the descriptor cache


@dataclass(slots=True)
class _Handle:
    fd: int
    file_gen: int
    refs: int = 0
    retired: bool = False  # out of the cache: closed when the last reader lets go


@dataclass(slots=True)
class _State:
    entries: dict[ChunkId, _Entry]
    used_bytes: int
    handles: OrderedDict[ChunkId, _Handle] = field(default_factory=OrderedDict)
    closed: bool = False


class DiskChunkStore(ChunkStore):
    """A target directory; build one with ``DiskChunkStore.open``."""

    def __init__(
        self, root: str, db: MetaDb, entries: dict[ChunkId, _Entry], *, fsync: bool, fd_cache_size: int
    ) -> None:
        self.root = root
        self.fsync = fsync
        self._db = db
        self._fd_cache_size = fd_cache_size
        self._lock = threading.Lock()
        self._gens = count(len(entries) + 1)
        used = sum(e.meta.length + e.meta.pending_length for e in entries.values())
        self._state = _State(entries, used)

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, fsync: bool = True, fd_cache_size: int = 256
    ) -> DiskChunkStore:
        """Open the target directory ``path`` (created when absent) and recover it: orphan files
        are deleted and pending versions verified (see the module docstring). Raises
        STORAGE_IO_ERROR when the directory or its metadata cannot be opened."""
        root = os.path.abspath(os.fspath(path))
        try:
            os.makedirs(os.path.join(root, "data"), exist_ok=True)
        except OSError as exc:
            raise os_error(exc, f"create {root}") from exc
        db = MetaDb(os.path.join(root, "meta.sqlite3"), fsync=fsync)
        try:
            rows = recover(root, db)
        except BaseException:
            db.close()
            raise
        entries = {meta.chunk_id: _Entry(meta, ccv, gen) for gen, (meta, ccv) in enumerate(rows, 1)}
        return cls(root, db, entries, fsync=fsync, fd_cache_size=fd_cache_size)

    # ---- lookups -------------------------------------------------------------------------------

    def _live(self) -> _State:
        """The state, or STORAGE_IO_ERROR once closed (lock held)."""
        if self._state.closed:
            raise ThreeFSError(Code.STORAGE_IO_ERROR, "chunk store is closed")
        return self._state

    def _entry(self, chunk_id: ChunkId) -> _Entry | None:
        with self._lock:
            return self._live().entries.get(chunk_id)

    def _path(self, chunk_id: ChunkId, version: int) -> str:
        return chunk_file(self.root, chunk_id, version)

    def get_meta(self, chunk_id: ChunkId) -> ChunkMeta | None:
        entry = self._entry(chunk_id)
        return entry.meta if entry is not None else None

    def list_meta(self, inode: int | None = None) -> list[ChunkMeta]:
        with self._lock:
            entries = self._live().entries
            ids = sorted(cid for cid in entries if inode is None or cid.inode == inode)
            return [entries[cid].meta for cid in ids]

    def space(self) -> SpaceInfo:
        try:
            stat = os.statvfs(self.root)
        except OSError as exc:
            raise os_error(exc, "statvfs") from exc
        with self._lock:
            state = self._live()
            return SpaceInfo(
                capacity_bytes=stat.f_blocks * stat.f_frsize,
                free_bytes=stat.f_bavail * stat.f_frsize,
                used_bytes=state.used_bytes,
                chunk_count=len(state.entries),
            )

    # ---- reads ---------------------------------------------------------------------------------

    def _lookup_for_read(
        self, chunk_id: ChunkId, offset: int, length: int
    ) -> tuple[_Entry, int, _Handle | None]:
        """The chunk's entry, the bytes a read of ``[offset, offset + length)`` gets (``rules``),
        and its cached descriptor when current, referenced (``_release`` it), else None; when
        the count is 0 no descriptor is taken. Raises STORAGE_CHUNK_NOT_FOUND."""
        with self._lock:
            state = self._live()
            entry = state.entries.get(chunk_id)
            if entry is None:
                raise ThreeFSError(Code.STORAGE_CHUNK_NOT_FOUND, f"no chunk {chunk_id}")
            wanted = rules.check_read(entry.meta, offset, length)
            if wanted == 0:
                return entry, 0, None
            handle = state.handles.get(chunk_id)
            if handle is None or handle.file_gen != entry.file_gen:
                return entry, wanted, None
            handle.refs += 1
            state.handles.move_to_end(chunk_id)
            return entry, wanted, handle

    def read(self, chunk_id: ChunkId, offset: int, length: int) -> bytes:
        for _ in range(_READ_ATTEMPTS):
            entry, wanted, handle = self._lookup_for_read(chunk_id, offset, length)
            if wanted == 0:
                return b""
            if handle is None:
                try:
                    fd = os.open(self._path(chunk_id, entry.meta.commit_version), os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue  # a commit or remove replaced the file since the lookup: look again
                except OSError as exc:
                    raise os_error(exc, f"open {chunk_id}") from exc
                handle = self._adopt(chunk_id, fd, entry.file_gen)
            try:
                data = os.pread(handle.fd, wanted, offset)
            except OSError as exc:
                raise os_error(exc, f"read {chunk_id}") from exc
            finally:
                self._release(handle)
            if len(data) != wanted:
                raise ThreeFSError(Code.STORAGE_IO_ERROR, f"chunk {chunk_id} file shorter than its metadata")
            return data
        raise ThreeFSError(Code.STORAGE_IO_ERROR, f"chunk {chunk_id} kept changing under a read")

    def read_cached(self, chunk_id: ChunkId, offset: int, length: int) -> bytes | None:
        """``pread`` with ``RWF_NOWAIT`` on the chunk's cached descriptor: None when the file is
        not open already or a page is not in the page cache (the caller then uses ``read``)."""
        if _RWF_NOWAIT is None:
            return None
        _, wanted, handle = self._lookup_for_read(chunk_id, offset, length)
        if wanted == 0:
            return b""
        if handle is None:
            return None
        try:
            buffer = bytearray(wanted)
            got = os.preadv(handle.fd, [buffer], offset, _RWF_NOWAIT)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                return None  # a file system without RWF_NOWAIT for buffered reads
            raise os_error(exc, f"read {chunk_id}") from exc
        finally:
            self._release(handle)
        return bytes(buffer) if got == wanted else None  # short: part of it is not cached

    def open_committed(self, chunk_id: ChunkId) -> tuple[ChunkMeta, int] | None:
        for _ in range(_READ_ATTEMPTS):
            with self._lock:
                entry = self._live().entries.get(chunk_id)
                if entry is None or entry.meta.commit_version == 0:
                    return None
                handle = self._state.handles.get(chunk_id)
                if handle is not None and handle.file_gen == entry.file_gen:
                    try:
                        return entry.meta, os.dup(handle.fd)
                    except OSError as exc:
                        raise os_error(exc, f"dup {chunk_id}") from exc
            try:
                fd = os.open(self._path(chunk_id, entry.meta.commit_version), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # a commit or remove replaced the file since the lookup: look again
            except OSError as exc:
                raise os_error(exc, f"open {chunk_id}") from exc
            handle = self._adopt(chunk_id, fd, entry.file_gen)
            try:
                return entry.meta, os.dup(fd)
            except OSError as exc:
                raise os_error(exc, f"dup {chunk_id}") from exc
            finally:
                self._release(handle)
        raise ThreeFSError(Code.STORAGE_IO_ERROR, f"chunk {chunk_id} kept changing under a read")

    def _adopt(self, chunk_id: ChunkId, fd: int, file_gen: int) -> _Handle:
        """A referenced handle for a freshly opened committed file, cached when still current."""
        handle = _Handle(fd, file_gen, refs=1)
        with self._lock:
            state = self._state
            entry = state.entries.get(chunk_id)
            if state.closed or entry is None or entry.file_gen != file_gen:
                handle.retired = True
                return handle
            old = state.handles.pop(chunk_id, None)
            if old is not None:
                self._retire(old)
            state.handles[chunk_id] = handle
            while len(state.handles) > self._fd_cache_size:
                self._retire(state.handles.popitem(last=False)[1])
        return handle

    def _release(self, handle: _Handle) -> None:
        with self._lock:
            handle.refs -= 1
            if handle.retired and handle.refs == 0:
                os.close(handle.fd)

    def _retire(self, handle: _Handle) -> None:
        """Take ``handle`` out of service (lock held); close it unless a reader still uses it."""
        handle.retired = True
        if handle.refs == 0:
            os.close(handle.fd)

    def _forget_handle(self, chunk_id: ChunkId) -> None:
        handle = self._state.handles.pop(chunk_id, None)
        if handle is not None:
            self._retire(handle)

    # ---- updates -------------------------------------------------------------------------------

    def prepare(
        self,
        chunk_id: ChunkId,
        *,
        update_version: int,
        chain_version: int,
        chunk_size: int,
        offset: int,
        data: bytes | bytearray | memoryview,
        truncate_to: int | None = None,
        replace: bool = False,
    ) -> ChunkMeta:
        entry = self._entry(chunk_id)
        meta = entry.meta if entry is not None else None
        plan = rules.plan_prepare(
            meta,
            chunk_id,
            update_version=update_version,
            chunk_size=chunk_size,
            offset=offset,
            data=data,
            truncate_to=truncate_to,
            replace=replace,
        )
        pending_version = meta.update_version if meta is not None and meta.state == ChunkState.DIRTY else 0
        old_pending_length = meta.pending_length if pending_version else 0
        same_version = pending_version == update_version
        path = self._path(chunk_id, update_version)
        written = path + ".tmp" if same_version else path
        crc = self._write_version(meta, written, plan)
        new_meta = rules.pending_meta(
            meta,
            chunk_id,
            update_version=update_version,
            chain_version=chain_version,
            chunk_size=chunk_size,
            pending_length=plan.final_length,
            pending_crc32c=crc,
        )
        committed_chain_version = entry.committed_chain_version if entry is not None else chain_version
        try:
            self._db.put(new_meta, committed_chain_version)
        except ThreeFSError:
            unlink_quiet(written)
            raise
        if same_version:
            try:
                os.replace(written, path)
                if self.fsync:
                    fsync_dir(os.path.dirname(path))
            except OSError as exc:
                raise os_error(exc, f"rename {written}") from exc
        with self._lock:
            state = self._state
            file_gen = entry.file_gen if entry is not None else next(self._gens)
            state.entries[chunk_id] = _Entry(new_meta, committed_chain_version, file_gen)
            state.used_bytes += plan.final_length - old_pending_length
        if pending_version and not same_version:
            unlink_quiet(self._path(chunk_id, pending_version))
        return new_meta

    def _write_version(self, meta: ChunkMeta | None, path: str, plan: rules.PreparePlan) -> int:
        """Write the pending file ``path`` of ``plan`` and return its crc32c. On failure the file
        is deleted and STORAGE_NO_SPACE / STORAGE_IO_ERROR raised."""
        keep, offset, data, final_length = plan
        prefix_crc = 0
        source = None
        if keep and meta is not None:  # keep > 0 only over committed data
            source = self._path(meta.chunk_id, meta.commit_version)
            if keep == meta.length and (not data or offset >= keep):
                prefix_crc = meta.crc32c  # append or extend: the committed checksum continues
            else:
                content = rules.build_pending(self._read_file(source, meta.length), plan)
                keep, offset, data, source = 0, 0, memoryview(content), None
        end = offset + len(data) if data else keep  # the file's size before any zero-extension
        try:
            fd = create_file(path, fsync_dirs=self.fsync)
            try:
                if source is not None:
                    copy_prefix(source, fd, keep)
                done = 0
                while done < len(data):
                    done += os.pwrite(fd, data[done:], offset + done)
                if final_length > end:
                    os.ftruncate(fd, final_length)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if self.fsync:
                fsync_dir(os.path.dirname(path))
        except OSError as exc:
            unlink_quiet(path)
            raise os_error(exc, f"write {path}") from exc
        crc = prefix_crc
        if data:
            crc = crc32c(data, rules.zeros_crc(crc, offset - keep))
        return rules.zeros_crc(crc, final_length - end)

    def _read_file(self, path: str, length: int) -> bytes:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                content = os.pread(fd, length, 0)
            finally:
                os.close(fd)
        except OSError as exc:
            raise os_error(exc, f"read {path}") from exc
        if len(content) != length:
            raise ThreeFSError(Code.STORAGE_IO_ERROR, f"{path} is shorter than its metadata")
        return content

    def commit(self, chunk_id: ChunkId, update_version: int) -> ChunkMeta:
        entry = self._entry(chunk_id)
        if entry is None:
            raise ThreeFSError(Code.STORAGE_CHUNK_NOT_FOUND, f"no chunk {chunk_id}")
        meta = entry.meta
        if not rules.check_commit(meta, chunk_id, update_version):
            return meta
        new_meta = rules.committed_meta(meta)
        self._db.put(new_meta, new_meta.chain_version)
        with self._lock:
            state = self._state
            state.entries[chunk_id] = _Entry(new_meta, new_meta.chain_version, next(self._gens))
            state.used_bytes -= meta.length
            self._forget_handle(chunk_id)
        if meta.commit_version > 0:
            unlink_quiet(self._path(chunk_id, meta.commit_version))
        return new_meta

    def abort(self, chunk_id: ChunkId, update_version: int) -> ChunkMeta | None:
        entry = self._entry(chunk_id)
        if entry is None:
            return None
        meta = entry.meta
        if meta.state != ChunkState.DIRTY or meta.update_version != update_version:
            return meta
        result: ChunkMeta | None = None
        if meta.commit_version == 0:
            self._db.delete(chunk_id)
        else:
            result = rules.aborted_meta(meta, entry.committed_chain_version)
            self._db.put(result, entry.committed_chain_version)
        with self._lock:
            state = self._state
            if result is None:
                del state.entries[chunk_id]
            else:
                state.entries[chunk_id] = _Entry(result, entry.committed_chain_version, entry.file_gen)
            state.used_bytes -= meta.pending_length
        unlink_quiet(self._path(chunk_id, update_version))
        return result

    def remove(self, chunk_id: ChunkId) -> bool:
        entry = self._entry(chunk_id)
        if entry is None:
            return False
        meta = entry.meta
        self._db.delete(chunk_id)
        with self._lock:
            state = self._state
            del state.entries[chunk_id]
            state.used_bytes -= meta.length + meta.pending_length
            self._forget_handle(chunk_id)
        if meta.commit_version > 0:
            unlink_quiet(self._path(chunk_id, meta.commit_version))
        if meta.state == ChunkState.DIRTY:
            unlink_quiet(self._path(chunk_id, meta.update_version))
        return True

    def close(self) -> None:
        with self._lock:
            if self._state.closed:
                return
            self._state.closed = True
            for handle in self._state.handles.values():
                self._retire(handle)
            self._state.handles.clear()
        self._db.close()
