"""UpdateChunk: the CRAQ write path, at the head (a client's update) and at every later hop.

At each target, under the chunk lock: check the chain version and this target's role, prepare
the pending version copy-on-write, forward to the successor (``ops.forward``), and once the
successor answered with the same whole-chunk length and checksum (or this target is the last),
commit and answer. The head assigns the version (``update_rules.plan_head``); a hop decides by
``update_rules.plan_hop``. REMOVE prepares nothing and deletes the chunk after the successor's
answer. A client's retries are answered from ``RequestDedup`` (only at the head: hops recognise
a retried forward by its version).

Failure handling (``ops.forward`` says when a forward gives up): the commit after a successful
forward is shielded from cancellation, so a successor's commit is never left without ours. When
a forward gives up, the pending version is dropped only if no try reached the successor;
otherwise it stays as a *leftover* (reads of this replica answer CHUNK_NOT_COMMITTED unless it
is the read tail) and the chunk's next update or a resync settles it.

Disk full: an update that would create a chunk with data (WRITE, REPLACE) on a target below its
free-space reserve is refused with STORAGE_NO_SPACE before anything changes there
(``StorageState.check_room_for_new_chunk``), at the head and at every SERVING hop; a SYNCING
target is not checked (it is being given what its chain already holds). A successor's
STORAGE_NO_SPACE counts as undelivered in ``ops.forward``, so each predecessor drops its pending
version and the refusal leaves every replica as it was. Updates of existing chunks and
TRUNCATE (no data) are not checked: only the OS's ENOSPC stops them.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import msgspec
import trio

from storage.components.targets import Target
from storage.components.update_rules import HopAction, plan_head, plan_hop
from storage.ops.chunk_update import ChunkUpdate, check_update_request, full_content, prepare_locally
from storage.ops.forward import ForwardFailed, forward
from storage.state import StorageState
from storage.store.interface import ChunkMeta
from threefs.errors import Code, ThreeFSError
from threefs.rpc.transport import Buffer
from threefs.wire.mgmtd import ChainTarget, PublicTargetState
from threefs.wire.storage import UPDATE_CHUNK, UpdateChunkRequest, UpdateChunkResponse, UpdateType

__all__ = ["update_chunk"]

log = logging.getLogger("storage.update")

_WITH_DATA = (UpdateType.WRITE, UpdateType.REPLACE)  # what a new chunk needs room for


async def update_chunk(
    state: StorageState, request: UpdateChunkRequest, payload: Buffer, deadline: float
) -> UpdateChunkResponse:
    """Apply ``request`` on this node's target of the chain and everything after it.

    Raises (besides the store's STORAGE_* errors): INVALID_ARG, STORAGE_BAD_OFFSET and
    STORAGE_CHECKSUM_MISMATCH for a malformed request; STORAGE_STALE_CHAIN_VERSION when the
    request's chain version is not this node's, or the chain changed so that this target lost
    its role midway; STORAGE_NOT_HEAD for a client update at another target than the head;
    STORAGE_SYNCING for an incremental update at a SYNCING target; STORAGE_STALE_UPDATE when a
    forwarded version cannot be applied here; STORAGE_NO_SPACE when it would create a chunk on
    a target below its free-space reserve (nothing changed on any replica) or the disk is full;
    the successor's error when a forward gives up.
    """
    check_update_request(request, payload)
    if request.from_target == 0:
        return await state.dedup.run(
            "UpdateChunk", request.tag, lambda: _at_head(state, request, payload, deadline)
        )
    return await _at_hop(state, request, payload, deadline)


async def _at_head(
    state: StorageState, request: UpdateChunkRequest, payload: Buffer, deadline: float
) -> UpdateChunkResponse:
    position = await state.position(request.chain_id, request.chain_version)
    if not position.is_head:
        raise ThreeFSError(
            Code.STORAGE_NOT_HEAD,
            f"target {position.target_id} is not the head of {position.describe()}",
        )
    target = state.targets.get(position.target_id)
    update = ChunkUpdate.from_request(request, payload, update_version=0)
    async with state.locks.hold(target.target_id, update.chunk_id):
        meta = await state.store_call(target, target.store.get_meta, update.chunk_id, chunk=True)
        if meta is None and request.update_type in _WITH_DATA:
            await state.check_room_for_new_chunk(target)
        version, as_replace = plan_head(meta, request.update_type)
        update = replace(update, update_version=version)
        if as_replace:
            log.info(
                "chunk %s has a leftover version %d: sending the update whole", update.chunk, version - 1
            )
            update = update.as_replace(await full_content(state, target, update))
        return await _apply(state, target, update, position.chain_version, deadline, head=True)


async def _at_hop(
    state: StorageState, request: UpdateChunkRequest, payload: Buffer, deadline: float
) -> UpdateChunkResponse:
    position = await state.position(request.chain_id, request.chain_version)
    if not position.receives_updates:
        raise ThreeFSError(
            Code.STORAGE_TARGET_OFFLINE,
            f"target {position.target_id} is {position.state.name} in {position.describe()}",
        )
    if position.predecessor_id != request.from_target:
        raise ThreeFSError(
            Code.INVALID_ARG,
            f"target {request.from_target} is not the predecessor of {position.target_id} "
            f"in {position.describe()}",
        )
    if position.state == PublicTargetState.SYNCING and not _is_whole(request.update_type):
        raise ThreeFSError(
            Code.STORAGE_SYNCING, f"target {position.target_id} is syncing: it takes whole chunks only"
        )
    target = state.targets.get(position.target_id)
    update = ChunkUpdate.from_request(request, payload, update_version=request.update_version)
    async with state.locks.hold(target.target_id, update.chunk_id):
        meta = await state.store_call(target, target.store.get_meta, update.chunk_id, chunk=True)
        action = plan_hop(
            meta,
            request.update_type,
            request.update_version,
            request.chain_version,
            len(payload),
            request.crc32c,
        )
        if action == HopAction.REPLAY and meta is not None:
            return _committed_answer(meta)
        if action == HopAction.STALE:
            committed = meta.commit_version if meta is not None else 0
            raise ThreeFSError(
                Code.STORAGE_STALE_UPDATE,
                f"target {target.target_id} cannot apply version {request.update_version} of "
                f"{request.chunk} ({request.update_type.name}) at commit version {committed}",
            )
        if meta is None and request.update_type in _WITH_DATA and position.state == PublicTargetState.SERVING:
            await state.check_room_for_new_chunk(target)
        if action == HopAction.FORCE:
            log.info("chunk %s on target %d diverged: replaced whole", request.chunk, target.target_id)
            await state.store_call(target, target.store.remove, update.chunk_id, chunk=True)
        return await _apply(state, target, update, request.chain_version, deadline, head=False)


def _is_whole(update_type: UpdateType) -> bool:
    return update_type in (UpdateType.REPLACE, UpdateType.REMOVE)


def _committed_answer(meta: ChunkMeta) -> UpdateChunkResponse:
    return UpdateChunkResponse(commit_version=meta.commit_version, length=meta.length, crc32c=meta.crc32c)


class _UpdatePlan:
    """``ForwardPlan`` of one chunk update: incremental while the successor can take it; the
    whole chunk for a SYNCING successor, or once the successor could not apply the increment."""

    spec = UPDATE_CHUNK

    def __init__(
        self, state: StorageState, target: Target, update: ChunkUpdate, expected: tuple[int, int]
    ) -> None:
        self.state = state
        self.target = target
        self.update = update
        self.expected = expected
        self.escalated = False
        self.sent_whole = False
        self._whole: ChunkUpdate | None = None

    async def build(self, successor: ChainTarget, chain_version: int) -> tuple[msgspec.Struct, Buffer]:
        send = self.update
        if not send.is_whole and (self.escalated or successor.public_state == PublicTargetState.SYNCING):
            if self._whole is None:
                self._whole = send.as_replace(await full_content(self.state, self.target, send))
            send = self._whole
        self.sent_whole = send.is_whole
        return send.request(chain_version, self.target.target_id)

    def accept(self, reply: Any) -> bool:
        return (reply.length, reply.crc32c) == self.expected

    def escalate(self) -> bool:
        if self.sent_whole:
            return False
        self.escalated = True
        return True


async def _apply(
    state: StorageState,
    target: Target,
    update: ChunkUpdate,
    chain_version: int,
    deadline: float,
    *,
    head: bool,
) -> UpdateChunkResponse:
    """Prepare ``update`` here, forward it, then commit (the caller holds the chunk lock)."""
    removing = update.update_type == UpdateType.REMOVE
    if removing:
        expected = (0, 0)
    else:
        pending = await prepare_locally(state, target, update, chain_version)
        expected = (pending.pending_length, pending.pending_crc32c)
    plan = _UpdatePlan(state, target, update, expected)
    try:
        await forward(
            state, plan, chain_id=update.chain_id, target_id=target.target_id, head=head, deadline=deadline
        )
    except ForwardFailed as failed:
        if not failed.delivered and not removing:
            with trio.CancelScope(shield=True):
                await state.store_call(
                    target, target.store.abort, update.chunk_id, update.update_version, chunk=True
                )
        elif not removing:
            log.warning(
                "update %d of %s on target %d left pending: %s",
                update.update_version,
                update.chunk,
                target.target_id,
                failed.error,
            )
        raise failed.error from None
    with trio.CancelScope(shield=True):
        if removing:
            await state.store_call(target, target.store.remove, update.chunk_id, chunk=True)
            return UpdateChunkResponse(commit_version=update.update_version, length=0, crc32c=0)
        meta = await state.store_call(
            target, target.store.commit, update.chunk_id, update.update_version, chunk=True
        )
    return _committed_answer(meta)
