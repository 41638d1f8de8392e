"""Chunk stores: the per-target interface and its implementations (disk, and the in-memory twin)."""

from storage.store.disk import DiskChunkStore
from storage.store.interface import (
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    ChunkId,
    ChunkMeta,
    ChunkState,
    ChunkStore,
    SpaceInfo,
)
from storage.store.mem import MemChunkStore

__all__ = [
    "MAX_CHUNK_SIZE",
    "MIN_CHUNK_SIZE",
    "ChunkId",
    "ChunkMeta",
    "ChunkState",
    "ChunkStore",
    "DiskChunkStore",
    "MemChunkStore",
    "SpaceInfo",
]
