"""The resync worker: brings a SYNCING successor up to date with this node's target.

For each chain where one of this node's targets is SERVING and its successor (the next target
that receives updates) is SYNCING, this node is the predecessor and syncs it:

1. ``SyncStart`` on the syncing target: the metadata of every chunk it holds.
2. For every chunk either side holds, in chunk order, under this target's chunk lock (so no
   update of that chunk runs meanwhile; updates of other chunks keep flowing, and the write path
   forwards each of them to the syncing target as a whole-chunk REPLACE):
   - this target has no committed data for it: remove it there (``RemoveChunks``, one index);
   - the syncing target holds the same committed version, length and checksum, not DIRTY: skip;
   - else send the committed chunk as a REPLACE at this target's commit version (removing the
     chunk there first when it is DIRTY or holds a version at least as new: it diverged).
3. ``SyncDone``: the target reports UPTODATE and mgmtd makes it SERVING.

The comparison uses this target's metadata at the moment the lock is held, so a chunk updated
after SyncStart is compared with its new version (at worst it is sent again and the syncing
target recognises the version it already has). Any chain version change aborts the sync (the
syncing target may have missed writes while it was out of SYNCING); the worker starts over with
the new version if the successor is still SYNCING. Progress is in the metrics
(``threefs_storage_resync_chunks_to_sync`` / ``..._synced``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio
from crc32c import crc32c

from storage.components.chain_position import locate
from storage.components.targets import Target
from storage.state import StorageState
from storage.store.interface import ChunkId, ChunkMeta
from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import PublicTargetState
from threefs.wire.storage import (
    DUMP_CHUNK_META,
    REMOVE_CHUNKS,
    SYNC_DONE,
    SYNC_START,
    UPDATE_CHUNK,
    ChunkKey,
    ChunkMetaInfo,
    DumpChunkMetaRequest,
    RemoveChunksRequest,
    SyncDoneRequest,
    SyncStartRequest,
    UpdateChunkRequest,
    UpdateType,
)

__all__ = ["Resyncer", "SyncJob"]

log = logging.getLogger("storage.resync")

_MAX_INDEX = 2**32 - 1


class _SyncAborted(Exception):
    """The chain changed under a sync."""


@dataclass(frozen=True, slots=True)
class SyncJob:
    """Sync ``syncing_id`` from this node's ``target_id`` in ``chain_id`` at ``chain_version``."""

    chain_id: int
    chain_version: int
    target_id: int
    syncing_id: int


class Resyncer:
    """``run_once`` runs every sync due now to its end; ``run_forever`` starts them as they
    become due (every ``resync_interval_s`` and whenever routing moves), one per successor."""

    def __init__(self, state: StorageState) -> None:
        self.state = state
        self.running: set[tuple[int, int]] = set()  # (chain id, syncing target id)
        self.done: dict[tuple[int, int], int] = {}  # -> chain version of the last SyncDone
        self.completed = 0
        # Chunk metadata per DumpChunkMeta page (about 115 bytes each: ~6 MiB a page).
        self.meta_page_chunks = 50_000

    def due(self) -> list[SyncJob]:
        """The syncs this node should run now (not running, not done at this chain version)."""
        routing = self.state.routing_info()
        if routing is None:
            return []
        jobs = []
        local = self.state.targets.ids()
        for chain in routing.chains.values():
            position = locate(chain, local)
            if position is None or position.state != PublicTargetState.SERVING:
                continue
            successor = position.successor
            if successor is None or successor.public_state != PublicTargetState.SYNCING:
                continue
            key = (chain.chain_id, successor.target_id)
            if key in self.running or self.done.get(key) == chain.chain_version:
                continue
            jobs.append(SyncJob(chain.chain_id, chain.chain_version, position.target_id, successor.target_id))
        return jobs

    async def run_once(self) -> int:
        """Run every due sync; returns how many finished."""
        finished = 0
        for job in self.due():
            finished += await self._run(job)
        return finished

    async def run_forever(self) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                for job in self.due():
                    self.running.add((job.chain_id, job.syncing_id))
                    nursery.start_soon(self._run, job)
                await self.state.wait_resync_wakeup(self.state.config.resync_interval_s)

    async def _run(self, job: SyncJob) -> bool:
        key = (job.chain_id, job.syncing_id)
        self.running.add(key)
        try:
            await self.sync(job)
        except _SyncAborted:
            log.info("sync of target %d aborted: chain %d changed", job.syncing_id, job.chain_id)
            self.state.metrics.resyncs.labels("aborted").inc()
            return False
        except ThreeFSError as exc:
            log.warning("sync of target %d in chain %d failed: %s", job.syncing_id, job.chain_id, exc)
            self.state.metrics.resyncs.labels("failed").inc()
            return False
        except Exception:  # a bug here must not take the node down: log it, retry later
            log.exception("sync of target %d in chain %d failed unexpectedly", job.syncing_id, job.chain_id)
            self.state.metrics.resyncs.labels("failed").inc()
            return False
        finally:
            self.running.discard(key)
        self.done[key] = job.chain_version
        self.completed += 1
        self.state.metrics.resyncs.labels("done").inc()
        return True

    # ------------------------------------------------------------------ one sync

    def _check(self, job: SyncJob) -> None:
        position = self.state.current_position(job.chain_id, job.target_id)
        if position is None or position.chain_version != job.chain_version:
            raise _SyncAborted()

    async def _call(self, job: SyncJob, spec, request, payload: bytes = b""):  # type: ignore[no-untyped-def]
        state = self.state
        address = state.routing.view.target_address(job.syncing_id)
        response, _ = await state.rpc.call(
            address, spec, request, payload=payload, timeout_s=state.config.update_timeout_s
        )
        return response

    async def sync(self, job: SyncJob) -> None:
        """Run one sync to its end (see the module docstring). Raises ``ThreeFSError`` when a
        call fails and ``_SyncAborted`` when the chain changes."""
        state = self.state
        target = state.targets.get(job.target_id)
        label = str(job.syncing_id)
        log.info(
            "syncing target %d from target %d in chain %d version %d",
            job.syncing_id,
            job.target_id,
            job.chain_id,
            job.chain_version,
        )
        await self._call(
            job,
            SYNC_START,
            SyncStartRequest(
                chain_id=job.chain_id,
                chain_version=job.chain_version,
                target_id=job.syncing_id,
                include_chunks=False,
            ),
        )
        remote = await self._remote_metas(job)
        local = await state.store_call(target, target.store.list_meta, read=True)
        chunk_ids = sorted({m.chunk_id for m in local} | set(remote))
        state.metrics.resync_to_sync.labels(label).set(len(chunk_ids))
        state.metrics.resync_synced.labels(label).set(0)
        sent = removed = 0
        for chunk_id in chunk_ids:
            async with state.locks.hold(target.target_id, chunk_id):
                self._check(job)
                outcome = await self._sync_chunk(job, target, chunk_id, remote.get(chunk_id))
            sent += outcome == "sent"
            removed += outcome == "removed"
            state.metrics.resync_synced.labels(label).inc()
        self._check(job)
        await self._call(
            job,
            SYNC_DONE,
            SyncDoneRequest(chain_id=job.chain_id, chain_version=job.chain_version, target_id=job.syncing_id),
        )
        log.info(
            "synced target %d in chain %d: %d chunks compared, %d sent, %d removed",
            job.syncing_id,
            job.chain_id,
            len(chunk_ids),
            sent,
            removed,
        )

    async def _remote_metas(self, job: SyncJob) -> dict[ChunkId, ChunkMetaInfo]:
        """Every chunk's metadata on the syncing target, fetched in pages of ``meta_page_chunks``
        (DumpChunkMeta), so no reply outgrows the frame limit however many chunks it holds."""
        remote: dict[ChunkId, ChunkMetaInfo] = {}
        after: ChunkKey | None = None
        while True:
            self._check(job)
            request = DumpChunkMetaRequest(target_id=job.syncing_id, after=after, limit=self.meta_page_chunks)
            page = await self._call(job, DUMP_CHUNK_META, request)
            for meta in page.chunks:
                remote[ChunkId(meta.chunk.inode, meta.chunk.index)] = meta
            if not page.more or not page.chunks:
                return remote
            after = page.chunks[-1].chunk

    async def _sync_chunk(
        self, job: SyncJob, target: Target, chunk_id: ChunkId, theirs: ChunkMetaInfo | None
    ) -> str:
        state = self.state
        store = target.store
        meta: ChunkMeta | None = await state.store_call(target, store.get_meta, chunk_id)
        if meta is None or meta.commit_version == 0:
            if theirs is None:
                return "same"
            await self._remove(job, chunk_id)
            return "removed"
        if (
            theirs is not None
            and not theirs.dirty
            and (theirs.commit_version, theirs.length, theirs.crc32c)
            == (
                meta.commit_version,
                meta.length,
                meta.crc32c,
            )
        ):
            return "same"
        data = await state.store_call(target, store.read, chunk_id, 0, meta.chunk_size, read=True)
        if theirs is not None and (theirs.dirty or theirs.commit_version >= meta.commit_version):
            await self._remove(job, chunk_id)
        try:
            await self._replace(job, meta, data)
        except ThreeFSError as exc:
            if exc.code != Code.STORAGE_STALE_UPDATE:
                raise
            await self._remove(job, chunk_id)  # it moved on since SyncStart: start it over
            await self._replace(job, meta, data)
        return "sent"

    async def _replace(self, job: SyncJob, meta: ChunkMeta, data: bytes) -> None:
        request = UpdateChunkRequest(
            tag=self.state.next_tag(),
            chain_id=job.chain_id,
            chain_version=job.chain_version,
            chunk=ChunkKey(meta.chunk_id.inode, meta.chunk_id.index),
            chunk_size=meta.chunk_size,
            update_type=UpdateType.REPLACE,
            length=len(data),
            crc32c=crc32c(data),
            update_version=meta.commit_version,
            from_target=job.target_id,
        )
        reply = await self._call(job, UPDATE_CHUNK, request, data)
        if (reply.length, reply.crc32c) != (meta.length, meta.crc32c):
            raise ThreeFSError(
                Code.STORAGE_CHECKSUM_MISMATCH,
                f"target {job.syncing_id} holds {reply} for {meta.chunk_id} after the sync, not "
                f"length {meta.length} crc32c {meta.crc32c:#010x}",
            )

    async def _remove(self, job: SyncJob, chunk_id: ChunkId) -> None:
        index = chunk_id.index
        request = RemoveChunksRequest(
            tag=self.state.next_tag(),
            chain_id=job.chain_id,
            chain_version=job.chain_version,
            inode=chunk_id.inode,
            begin_index=index,
            end_index=index + 1 if index < _MAX_INDEX else 0,
            from_target=job.target_id,
        )
        await self._call(job, REMOVE_CHUNKS, request)
