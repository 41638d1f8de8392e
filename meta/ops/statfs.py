"""statfs: space figures (from storage, passed in by the service) and meta's inode figure."""

from __future__ import annotations

from meta.ops.context import OpContext
from meta.store.alloc import allocated_upper_bound
from threefs.wire.meta import StatFsRequest, StatFsResponse

__all__ = ["statfs"]


def statfs(
    ctx: OpContext, request: StatFsRequest, *, capacity_bytes: int, used_bytes: int, free_bytes: int
) -> StatFsResponse:
    """File-system figures. ``inodes_used`` is an upper bound: the ids of every block the inode
    allocator handed out (a snapshot read, so statfs never conflicts with creates). Counting
    inodes exactly would need a counter every create and remove updates, one hot key for the
    whole cluster; an upper bound that grows by ``BLOCK_SIZE`` steps is what df needs."""
    return StatFsResponse(
        capacity_bytes=capacity_bytes,
        used_bytes=used_bytes,
        free_bytes=free_bytes,
        inodes_used=allocated_upper_bound(ctx.txn),
    )
