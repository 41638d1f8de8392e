"""Read-only questions about a target's chunks: QueryLastChunk, SpaceInfo, DumpChunkMeta."""

from __future__ import annotations

from storage.state import StorageState
from storage.store.interface import ChunkId, ChunkMeta, ChunkState
from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import PublicTargetState
from threefs.wire.storage import (
    ChunkKey,
    ChunkMetaInfo,
    DumpChunkMetaRequest,
    DumpChunkMetaResponse,
    QueryLastChunkRequest,
    QueryLastChunkResponse,
    SpaceInfoRequest,
    SpaceInfoResponse,
    TargetSpace,
)

__all__ = ["chunk_meta_info", "dump_chunk_meta", "query_last_chunk", "space_info"]


def chunk_meta_info(meta: ChunkMeta) -> ChunkMetaInfo:
    """``meta`` as it crosses the wire (the committed version's length and checksum)."""
    return ChunkMetaInfo(
        chunk=ChunkKey(meta.chunk_id.inode, meta.chunk_id.index),
        chunk_size=meta.chunk_size,
        chain_version=meta.chain_version,
        update_version=meta.update_version,
        commit_version=meta.commit_version,
        length=meta.length,
        crc32c=meta.crc32c,
        dirty=meta.state == ChunkState.DIRTY,
    )


async def query_last_chunk(state: StorageState, request: QueryLastChunkRequest) -> QueryLastChunkResponse:
    """The last chunk with committed data of ``request.inode`` in the index range on a SERVING
    target. Raises STORAGE_TARGET_NOT_FOUND, STORAGE_STALE_CHAIN_VERSION, STORAGE_SYNCING or
    STORAGE_TARGET_OFFLINE (the target does not serve reads now)."""
    target = state.targets.get(request.target_id)
    position = await state.position(request.chain_id, request.chain_version, request.target_id)
    if position.state != PublicTargetState.SERVING:
        code = (
            Code.STORAGE_SYNCING
            if position.state == PublicTargetState.SYNCING
            else Code.STORAGE_TARGET_OFFLINE
        )
        raise ThreeFSError(
            code, f"target {request.target_id} is {position.state.name} in {position.describe()}"
        )
    if request.end_index and request.end_index < request.begin_index:
        raise ThreeFSError(
            Code.INVALID_ARG, f"index range [{request.begin_index}, {request.end_index}) is reversed"
        )
    end = request.end_index or 2**32
    metas = await state.store_call(target, target.store.list_meta, request.inode, read=True)
    held = [m for m in metas if request.begin_index <= m.chunk_id.index < end and m.commit_version > 0]
    if not held:
        return QueryLastChunkResponse(found=False)
    last = held[-1]  # list_meta sorts by chunk id
    return QueryLastChunkResponse(
        found=True, last_index=last.chunk_id.index, last_length=last.length, chunk_count=len(held)
    )


async def space_info(state: StorageState, request: SpaceInfoRequest) -> SpaceInfoResponse:
    """Space of the named targets (all when none is named). Raises STORAGE_TARGET_NOT_FOUND."""
    ids = request.target_ids or sorted(state.targets.ids())
    spaces = []
    for target_id in ids:
        target = state.targets.get(target_id)
        space = await state.store_call(target, target.store.space, read=True)
        target.space = space
        spaces.append(
            TargetSpace(
                target_id=target_id,
                capacity_bytes=space.capacity_bytes,
                free_bytes=space.free_bytes,
                used_bytes=space.used_bytes,
                chunk_count=space.chunk_count,
            )
        )
    return SpaceInfoResponse(targets=spaces)


async def dump_chunk_meta(state: StorageState, request: DumpChunkMetaRequest) -> DumpChunkMetaResponse:
    """One page of a target's chunk metadata, sorted by chunk: chunks after ``request.after``,
    at most ``limit`` (0: all), ``more`` when some are left. Raises STORAGE_TARGET_NOT_FOUND."""
    target = state.targets.get(request.target_id)
    metas = await state.store_call(target, target.store.list_meta, request.inode, read=True)
    if request.after is not None:
        after = ChunkId(request.after.inode, request.after.index)
        metas = [m for m in metas if m.chunk_id > after]
    more = bool(request.limit) and len(metas) > request.limit
    if request.limit:
        metas = metas[: request.limit]
    return DumpChunkMetaResponse(chunks=[chunk_meta_info(m) for m in metas], more=more)
