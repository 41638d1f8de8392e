"""The durable chunk-metadata table of one disk target: SQLite (WAL) in the target directory.

The schema below is the one canonical definition (``DiskChunkStore`` documents how it is used).
Every mutation is one statement, hence one SQLite transaction: ``put`` (an upsert of the whole
row) or ``delete``. The table is read only by ``load`` at open; the store keeps its own copy in
memory for lookups. Thread-safe: one connection guarded by a lock.
"""

from __future__ import annotations

import sqlite3
import threading

from storage.store.interface import ChunkId, ChunkMeta, ChunkState
from threefs.errors import Code, ThreeFSError

__all__ = ["SCHEMA", "MetaDb"]

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    inode INTEGER NOT NULL,             -- u64 stored as two's-complement i64 (see _to_i64)
    idx INTEGER NOT NULL,               -- chunk index (u32)
    chunk_size INTEGER NOT NULL,        -- fixed at the chunk's first write
    chain_version INTEGER NOT NULL,     -- of the last update applied (the pending one while DIRTY)
    committed_chain_version INTEGER NOT NULL,  -- of the committed version; abort restores it
    update_version INTEGER NOT NULL,    -- newest version prepared (== commit_version when COMMITTED)
    commit_version INTEGER NOT NULL,    -- 0: no committed data yet (first write still pending)
    length INTEGER NOT NULL,            -- committed bytes
    crc32c INTEGER NOT NULL,            -- of the committed bytes (0 when commit_version is 0)
    pending_length INTEGER NOT NULL,    -- of version update_version while DIRTY, else 0
    pending_crc32c INTEGER NOT NULL,    -- of version update_version while DIRTY, else 0
    state INTEGER NOT NULL,             -- ChunkState: 1 COMMITTED, 2 DIRTY
    PRIMARY KEY (inode, idx)
) WITHOUT ROWID
"""

_PUT = "INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_DELETE = "DELETE FROM chunks WHERE inode = ? AND idx = ?"
_LOAD = (
    "SELECT inode, idx, chunk_size, chain_version, committed_chain_version, update_version,"
    " commit_version, length, crc32c, pending_length, pending_crc32c, state FROM chunks"
)


def _to_i64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _from_i64(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def _db_error(exc: sqlite3.Error, doing: str) -> ThreeFSError:
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return ThreeFSError(Code.STORAGE_NO_SPACE, f"metadata {doing}: {exc}")
    return ThreeFSError(Code.STORAGE_IO_ERROR, f"metadata {doing}: {exc}")


class MetaDb:
    """The ``chunks`` table at ``path``. ``fsync`` True: synchronous=FULL (each transaction is
    durable against power loss when it returns); False: synchronous=NORMAL (durable against a
    process crash; WAL fsyncs only at checkpoints)."""

    def __init__(self, path: str, *, fsync: bool) -> None:
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise ThreeFSError(Code.STORAGE_IO_ERROR, f"{path}: unknown schema version {version}")
            self._conn.execute(SCHEMA)
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise _db_error(exc, f"open {path}") from exc

    def load(self) -> list[tuple[ChunkMeta, int]]:
        """Every row as ``(meta, committed_chain_version)``, unordered."""
        with self._lock:
            try:
                rows = self._conn.execute(_LOAD).fetchall()
            except sqlite3.Error as exc:
                raise _db_error(exc, "load") from exc
        out = []
        for row in rows:
            meta = ChunkMeta(
                chunk_id=ChunkId(_from_i64(row[0]), row[1]),
                chunk_size=row[2],
                chain_version=row[3],
                update_version=row[5],
                commit_version=row[6],
                length=row[7],
                crc32c=row[8],
                pending_length=row[9],
                pending_crc32c=row[10],
                state=ChunkState(row[11]),
            )
            out.append((meta, row[4]))
        return out

    def put(self, meta: ChunkMeta, committed_chain_version: int) -> None:
        """Insert or replace the chunk's row (one transaction)."""
        row = (
            _to_i64(meta.chunk_id.inode),
            meta.chunk_id.index,
            meta.chunk_size,
            meta.chain_version,
            committed_chain_version,
            meta.update_version,
            meta.commit_version,
            meta.length,
            meta.crc32c,
            meta.pending_length,
            meta.pending_crc32c,
            int(meta.state),
        )
        with self._lock:
            try:
                self._conn.execute(_PUT, row)
            except sqlite3.Error as exc:
                raise _db_error(exc, "write") from exc

    def delete(self, chunk_id: ChunkId) -> None:
        """Delete the chunk's row (one transaction); no-op when absent."""
        with self._lock:
            try:
                self._conn.execute(_DELETE, (_to_i64(chunk_id.inode), chunk_id.index))
            except sqlite3.Error as exc:
                raise _db_error(exc, "delete") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()
