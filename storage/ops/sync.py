"""SyncStart and SyncDone, on the SYNCING target (the predecessor's side is
``storage.workers.resync``).

SyncStart: the predecessor announces a sync for the chain version in which this target is
SYNCING; the answer is the metadata of every chunk the target holds, which the predecessor
compares with its own. It forgets an earlier SyncDone (a new sync starts over).


SyncDone: the predecessor has sent everything that differed; from now on the target reports
UPTODATE, and mgmtd makes it SERVING. Both are refused (STORAGE_STALE_CHAIN_VERSION) unless the
request's chain version is this node's and routing shows the target SYNCING in it.
"""

from __future__ import annotations

import logging

from storage.components.chain_position import ChainPosition
from storage.ops.query import chunk_meta_info
from storage.state import StorageState
from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import LocalTargetState, PublicTargetState
from threefs.wire.storage import SyncDoneRequest, SyncDoneResponse, SyncStartRequest, SyncStartResponse

__all__ = ["sync_done", "sync_start"]

log = logging.getLogger("storage.sync")


async def _syncing_position(
    state: StorageState, chain_id: int, chain_version: int, target_id: int
) -> ChainPosition:
    state.targets.get(target_id)  # STORAGE_TARGET_NOT_FOUND first
    position = await state.position(chain_id, chain_version, target_id)
    if position.state != PublicTargetState.SYNCING:
        raise ThreeFSError(
            Code.STORAGE_STALE_CHAIN_VERSION,
            f"target {target_id} is {position.state.name}, not SYNCING, in {position.describe()}",
        )
    return position


async def sync_start(state: StorageState, request: SyncStartRequest) -> SyncStartResponse:
    """Every chunk's metadata on the syncing target (see the module docstring)."""
    position = await _syncing_position(state, request.chain_id, request.chain_version, request.target_id)
    target = state.targets.get(request.target_id)
    target.synced_version = 0
    if target.local_state == LocalTargetState.UPTODATE:
        target.local_state = LocalTargetState.ONLINE
    log.info("target %d: sync from its predecessor starts in %s", request.target_id, position.describe())
    if not request.include_chunks:
        return SyncStartResponse(chunks=[])
    metas = await state.store_call(target, target.store.list_meta, read=True)
    return SyncStartResponse(chunks=[chunk_meta_info(meta) for meta in metas])


async def sync_done(state: StorageState, request: SyncDoneRequest) -> SyncDoneResponse:
    """Mark the syncing target in sync: it reports UPTODATE from its next heartbeat (sent now)."""
    position = await _syncing_position(state, request.chain_id, request.chain_version, request.target_id)
    target = state.targets.get(request.target_id)
    target.check_usable()
    target.synced_version = position.chain_version
    target.local_state = LocalTargetState.UPTODATE
    log.info("target %d: sync done in %s; reporting UPTODATE", request.target_id, position.describe())
    state.wake_heartbeat()
    return SyncDoneResponse()
