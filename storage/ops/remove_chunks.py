"""RemoveChunks: delete a range of an inode's chunks on every replica, head to tail like an update.

Each target locks its chunks of the range (in sorted order), forwards the request to its
successor, and deletes its own chunks once the successor answered, so a chunk is never gone
upstream while a downstream replica still serves it after a success. The answer is the number of
chunks the last target removed. Retries at the head are answered from ``RequestDedup``; at a hop
a retried removal simply finds fewer chunks.
"""

from __future__ import annotations

from typing import Any

import msgspec
import trio

from storage.ops.forward import ForwardFailed, forward
from storage.state import StorageState
from threefs.errors import Code, ThreeFSError
from threefs.rpc.transport import Buffer
from threefs.wire.mgmtd import ChainTarget
from threefs.wire.storage import REMOVE_CHUNKS, RemoveChunksRequest, RemoveChunksResponse

__all__ = ["remove_chunks"]


async def remove_chunks(
    state: StorageState, request: RemoveChunksRequest, deadline: float
) -> RemoveChunksResponse:
    """Remove the chunks of ``request.inode`` in ``[begin_index, end_index)`` (end 0: no bound)
    on this node's target of the chain and after it. Raises STORAGE_STALE_CHAIN_VERSION,
    STORAGE_NOT_HEAD (a client request at another target than the head), INVALID_ARG (a
    forward from a target that is not the predecessor), or the successor's error."""
    if request.end_index and request.end_index < request.begin_index:
        raise ThreeFSError(
            Code.INVALID_ARG, f"index range [{request.begin_index}, {request.end_index}) is reversed"
        )
    if request.from_target == 0:
        return await state.dedup.run("RemoveChunks", request.tag, lambda: _remove(state, request, deadline))
    return await _remove(state, request, deadline)


class _RemovePlan:
    spec = REMOVE_CHUNKS

    def __init__(self, request: RemoveChunksRequest, target_id: int) -> None:
        self.request = request
        self.target_id = target_id

    async def build(self, successor: ChainTarget, chain_version: int) -> tuple[msgspec.Struct, Buffer]:
        forwarded = msgspec.structs.replace(
            self.request, chain_version=chain_version, from_target=self.target_id
        )
        return forwarded, b""

    def accept(self, reply: Any) -> bool:
        return True

    def escalate(self) -> bool:
        return False


async def _remove(state: StorageState, request: RemoveChunksRequest, deadline: float) -> RemoveChunksResponse:
    position = await state.position(request.chain_id, request.chain_version)
    head = request.from_target == 0
    if head and not position.is_head:
        raise ThreeFSError(
            Code.STORAGE_NOT_HEAD, f"target {position.target_id} is not the head of {position.describe()}"
        )
    if not head and (not position.receives_updates or position.predecessor_id != request.from_target):
        raise ThreeFSError(
            Code.INVALID_ARG,
            f"target {request.from_target} does not forward to {position.target_id} in {position.describe()}",
        )
    target = state.targets.get(position.target_id)
    end = request.end_index or 2**32
    metas = await state.store_call(target, target.store.list_meta, request.inode)
    chunk_ids = [m.chunk_id for m in metas if request.begin_index <= m.chunk_id.index < end]
    async with state.locks.hold_many(target.target_id, chunk_ids):
        try:
            reply = await forward(
                state,
                _RemovePlan(request, target.target_id),
                chain_id=request.chain_id,
                target_id=target.target_id,
                head=head,
                deadline=deadline,
            )
        except ForwardFailed as failed:
            raise failed.error from None

        def remove_all() -> int:
            return sum(1 for chunk_id in chunk_ids if target.store.remove(chunk_id))

        with trio.CancelScope(shield=True):  # the successor removed them: so do we
            removed = await state.store_call(target, remove_all)
    return RemoveChunksResponse(removed=reply.removed if reply is not None else removed)
