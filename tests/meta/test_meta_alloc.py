"""The inode id allocator (meta/store/alloc.py): unique ids across servers, reserve before ops."""

from __future__ import annotations

import random

import pytest
import trio

from meta.store.alloc import BLOCK_SIZE, FIRST_ID, InodeAllocator, allocated_upper_bound
from threefs.kv import open_engine
from threefs.kv.retry import run_transaction


@pytest.mark.parametrize("kind", ["mem", "sqlite"])
def test_two_allocators_never_hand_out_the_same_id(kind, tmp_path):
    url = "mem://" if kind == "mem" else f"sqlite://{tmp_path}/kv.db?busy_timeout=5"
    with open_engine(url) as engine:
        first = InodeAllocator(engine, rng=random.Random(1))
        second = InodeAllocator(engine, rng=random.Random(1))  # same shard choices: must conflict
        ids = [first.allocate() for _ in range(BLOCK_SIZE + 5)] + [
            second.allocate() for _ in range(BLOCK_SIZE + 5)
        ]
        assert len(set(ids)) == len(ids) and min(ids) >= FIRST_ID
        assert run_transaction(engine, allocated_upper_bound) == 4 * BLOCK_SIZE


def test_reserve_keeps_ids_in_hand_so_ops_never_take_a_block(tmp_path):
    with open_engine(f"sqlite://{tmp_path}/kv.db?busy_timeout=5") as engine:
        allocator = InodeAllocator(engine, rng=random.Random(3))
        allocator.reserve(BLOCK_SIZE + 1)
        assert allocator.available == 2 * BLOCK_SIZE

        def inside(txn):  # with ids in hand, allocating inside a write transaction is safe
            txn.set(b"x", b"y")
            return [allocator.allocate() for _ in range(BLOCK_SIZE + 1)]

        ids = run_transaction(engine, inside)
        assert len(set(ids)) == BLOCK_SIZE + 1 and allocator.available == BLOCK_SIZE - 1
        allocator.reserve(10)  # enough in hand: takes nothing
        assert allocator.available == BLOCK_SIZE - 1

        async def reserve_more():
            await allocator.reserve_async(BLOCK_SIZE)

        trio.run(reserve_more)
        assert allocator.available == 2 * BLOCK_SIZE - 1
