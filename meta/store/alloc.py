"""Inode ids: a sharded counter, so meta servers rarely contend and never hand out an id twice.

The allocator key space is ``IALC`` + shard (one byte, ``SHARDS`` of them). Shard ``s`` holding
counter ``c`` owns block ``c * SHARDS + s``; a block is ``BLOCK_SIZE`` consecutive ids starting
at ``FIRST_ID + block * BLOCK_SIZE``. A server takes a block with one small transaction on a
random shard (incrementing its counter), then hands out the block's ids from memory. Two servers
that take a block from the same shard conflict and one retries, so every block has one owner.
Ids of a block a server never used (it stopped) are simply skipped: ids are never reused.
"""

from __future__ import annotations

import functools
import random
import struct
import threading
from collections import deque

from threefs.kv import keys
from threefs.kv.interface import Engine, Transaction
from threefs.kv.retry import run_transaction, run_transaction_async

__all__ = ["BLOCK_SIZE", "FIRST_ID", "SHARDS", "InodeAllocator", "allocated_upper_bound"]

SHARDS = 32
BLOCK_SIZE = 1024
FIRST_ID = 1 << 10  # ids below are reserved (1 is the root directory)


def _shard_key(shard: int) -> bytes:
    return keys.INODE_ALLOCATOR_KEY + bytes([shard])


def _take_block(txn: Transaction, shard: int) -> int:
    """The first id of a fresh block of ``shard`` (and the shard's counter moved past it)."""
    key = _shard_key(shard)
    raw = txn.get(key)
    counter = struct.unpack(">Q", raw)[0] if raw is not None else 0
    txn.set(key, struct.pack(">Q", counter + 1))
    return FIRST_ID + (counter * SHARDS + shard) * BLOCK_SIZE


def allocated_upper_bound(txn: Transaction) -> int:
    """One past the largest id any block handed out so far covers (statfs's inode figure uses
    the number of blocks taken)."""
    begin, end = keys.prefix_range(keys.INODE_ALLOCATOR_KEY)
    blocks = sum(struct.unpack(">Q", value)[0] for _, value in txn.snapshot_get_range(begin, end))
    return blocks * BLOCK_SIZE


class InodeAllocator:
    """Hands out unique inode ids. Thread-safe (ops run in worker threads); no lock is held
    while a block is taken, so a thread inside a transaction never waits on one that waits for
    the engine.

    A block is taken with a short transaction of its own, never inside an operation's: a block
    taken stays taken even if the operation's transaction is retried (which only skips ids).
    Engines that serialize writers (sqlite) cannot run that transaction while an operation's
    holds the write lock, so the driver calls ``reserve``/``reserve_async`` before an operation
    to have the ids it may need in hand; ``allocate`` takes a block itself only when none is
    left (safe outside a transaction, and on engines with concurrent writers)."""

    def __init__(self, engine: Engine, *, rng: random.Random | None = None) -> None:
        self._engine = engine
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._ranges: deque[list[int]] = deque()  # [next, end) ranges of ids in hand

    @property
    def available(self) -> int:
        """Ids in hand (no transaction needed to hand them out)."""
        with self._lock:
            return sum(end - start for start, end in self._ranges)

    def _add_block(self, start: int) -> None:
        with self._lock:
            self._ranges.append([start, start + BLOCK_SIZE])

    def _take_block_now(self) -> None:
        shard = self._rng.randrange(SHARDS)
        self._add_block(run_transaction(self._engine, lambda txn: _take_block(txn, shard)))

    def reserve(self, count: int) -> None:
        """Have at least ``count`` ids in hand (taking blocks, each in its own transaction).
        Call it outside any transaction."""
        while self.available < count:
            self._take_block_now()

    async def reserve_async(self, count: int) -> None:
        """``reserve`` for trio callers (the block transactions run in worker threads)."""
        while self.available < count:
            shard = self._rng.randrange(SHARDS)
            start = await run_transaction_async(self._engine, functools.partial(_take_block, shard=shard))
            self._add_block(start)

    def allocate(self) -> int:
        """A fresh id: one in hand, or one of a block taken now (see the class docstring)."""
        while True:
            with self._lock:
                while self._ranges and self._ranges[0][0] >= self._ranges[0][1]:
                    self._ranges.popleft()
                if self._ranges:
                    inode_id = self._ranges[0][0]
                    self._ranges[0][0] += 1
                    return inode_id
            self._take_block_now()
