"""The storage client: file byte ranges to chunk I/O on the storage service's chains.

``StorageClient`` splits a range by the file's ``Layout`` into per-chunk I/Os, sends reads to a
SERVING replica of each chain (round-robin) in one BatchRead per storage node, and writes to each
chain's head with one UpdateChunk per chunk (CRAQ carries it down the chain), with bounded
concurrency. It retries only retryable errors, with doubling backoff, and refreshes routing info
when an error says it may be stale (see ``client.chunk_io.REFRESH_CODES``).

Contracts of a failure (an exception, or a cancellation):

- ``write`` / ``write_chunks``: every chunk update is all-or-nothing (copy-on-write on every
  replica), but which of the range's chunks were updated is unknown: some may be, and an update
  whose reply was lost may still commit. Writing the same range again is safe (a retry of one
  update reuses its request tag, so the servers apply it once).
- ``truncate`` / ``remove``: idempotent; after a failure, run them again.
- Reads and ``file_length_hint`` change nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import crc32c
import msgspec
import trio

from client.chunk_io import (
    REFRESH_CODES,
    Buffer,
    ChunkRead,
    ChunkWrite,
    RequestTags,
    RetryBudget,
    give_up_error,
    pick_replica,
)
from client.config import StorageClientConfig
from client.routing import ROUTING_MISMATCH_CODES, RoutingCache, RoutingView
from client.storage_reads import BatchReader
from threefs.errors import Code, ThreeFSError
from threefs.layout import Layout, split_range, stripe_positions
from threefs.rpc import RpcClient
from threefs.wire import storage as wire
from threefs.wire.common import MethodSpec
from threefs.wire.mgmtd import TargetInfo
from threefs.wire.storage import ChunkKey, RequestTag

__all__ = ["ChunkRead", "ChunkWrite", "StorageClient", "StorageClientStats"]

log = logging.getLogger("client.storage")

# A routing mismatch whose refresh moved the routing on is retried at once, without a pause.
_RETRY_AT_ONCE = ROUTING_MISMATCH_CODES | {Code.STORAGE_NOT_HEAD}


@dataclass
class StorageClientStats:
    """Counters for tests and metrics: RPCs sent, retries made, routing refreshes asked."""

    rpcs: int = 0
    retries: int = 0
    refreshes: int = 0


class StorageClient:
    """Reads and writes chunks through ``rpc`` (borrowed: the caller keeps it open) with routing
    from ``routing`` (borrowed; refreshed here on mismatches). ``client_id`` (16 bytes, default
    random) names this client in update request tags. Safe to use from many tasks at once: at
    most ``config.max_in_flight`` storage RPCs are in flight for all of them together."""

    def __init__(
        self,
        rpc: RpcClient,
        routing: RoutingCache,
        config: StorageClientConfig | None = None,
        *,
        client_id: bytes | None = None,
    ) -> None:
        self.rpc = rpc
        self.routing = routing
        self.config = config or StorageClientConfig()
        self.tags = RequestTags(client_id if client_id is not None else os.urandom(16))
        self.stats = StorageClientStats()
        # Bounds the storage RPCs in flight for every operation of this client together.
        self.limiter = trio.CapacityLimiter(self.config.max_in_flight)
        self._reader = BatchReader(self)
        self._replica_counter = 0

    @property
    def client_id(self) -> bytes:
        return self.tags.client_id

    # ------------------------------------------------------------------ file-level API

    async def write(self, inode: int, layout: Layout, offset: int, data: Buffer) -> int:
        """Write ``data`` at byte ``offset`` of file ``inode``; returns ``len(data)``. ``data`` is
        sent without a copy and must not change until the call returns. Raises INVALID_ARG for a
        range outside the layout, else the first chunk's error (see the module docstring for
        what a failure leaves behind)."""
        view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        spans = split_range(layout, offset, len(view))
        chain_of = await self._chain_resolver(layout)
        writes = [
            ChunkWrite(
                chain_of(span.index),
                ChunkKey(inode, span.index),
                layout.chunk_size,
                span.offset,
                view[span.position : span.position + span.length],
            )
            for span in spans
        ]
        await self.write_chunks(writes)
        return len(view)

    async def read(self, inode: int, layout: Layout, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes of file ``inode`` from ``offset``. Holes, missing chunks and
        bytes past a chunk's end read as zeros: the caller clips the range to the file length
        (which the meta service knows) first."""
        if length < 0:
            raise ThreeFSError(Code.INVALID_ARG, f"negative read length: {length}")
        buffer = bytearray(length)
        await self.read_into(inode, layout, offset, buffer)
        return bytes(buffer)

    async def read_into(self, inode: int, layout: Layout, offset: int, buffer: Buffer) -> int:
        """``read`` into a writable ``buffer`` (its whole length, one copy less); returns its length.
        On failure the buffer's contents are unspecified."""
        out = memoryview(buffer).cast("B")
        if out.readonly:
            raise ThreeFSError(Code.INVALID_ARG, "read_into needs a writable buffer")
        spans = split_range(layout, offset, len(out))
        chain_of = await self._chain_resolver(layout)
        reads = [
            ChunkRead(
                chain_of(s.index),
                ChunkKey(inode, s.index),
                s.offset,
                s.length,
                out[s.position : s.position + s.length],
            )
            for s in spans
        ]
        results = await self.read_chunks(reads)
        for span, data in zip(spans, results, strict=True):
            got = len(data)
            if got and data.obj is not out.obj:  # not received in place already
                out[span.position : span.position + got] = data
            if got < span.length:
                out[span.position + got : span.position + span.length] = bytes(span.length - got)
        return len(out)

    async def truncate(self, inode: int, layout: Layout, old_length: int, new_length: int) -> None:
        """Make the chunks of file ``inode`` hold ``new_length`` bytes: when shrinking, remove every
        chunk past the new last one from each chain of the stripe; then cut (or zero-extend) the new
        last chunk to its length, creating it if absent so ``file_length_hint`` sees the length.
        Idempotent: after a failure, call it again."""
        if old_length < 0 or new_length < 0:
            raise ThreeFSError(Code.INVALID_ARG, f"negative length: {old_length}, {new_length}")
        split_range(layout, 0, new_length)  # range check
        size = layout.chunk_size
        last_index = (new_length - 1) // size if new_length else -1
        chains = await self._stripe_chains(layout)
        if new_length < old_length or new_length == 0:
            await self._for_each_chain(chains, lambda c: self._remove_range(c, inode, last_index + 1, 0))
        if new_length:
            chain_of = await self._chain_resolver(layout)
            truncate_to = new_length - last_index * size
            chunk = ChunkKey(inode, last_index)

            def build(chain_version: int, tag: RequestTag | None) -> wire.UpdateChunkRequest:
                return wire.UpdateChunkRequest(
                    tag=tag,  # type: ignore[arg-type]
                    chain_id=chain_of(last_index),
                    chain_version=chain_version,
                    chunk=chunk,
                    chunk_size=size,
                    update_type=wire.UpdateType.TRUNCATE,
                    truncate_to=truncate_to,
                )

            await self._chain_call(chain_of(last_index), wire.UPDATE_CHUNK, build, f"truncate {chunk}")

    async def remove(self, inode: int, layout: Layout) -> int:
        """Remove every chunk of file ``inode`` from every chain of its stripe; returns how many
        chunks the chains' tails removed. Idempotent."""
        chains = await self._stripe_chains(layout)
        counts = await self._for_each_chain(chains, lambda c: self._remove_range(c, inode, 0, 0))
        return sum(counts)

    async def file_length_hint(self, inode: int, layout: Layout) -> int:
        """The file's length as its chunks give it: the largest ``last_index * chunk_size +
        last_length`` of QueryLastChunk over the chains of the stripe (asked of each chain's
        tail, which holds only committed data); 0 when no chunk exists."""
        chains = await self._stripe_chains(layout)
        size = layout.chunk_size

        async def query(chain_id: int) -> int:
            def build(chain_version: int, target: int) -> wire.QueryLastChunkRequest:
                return wire.QueryLastChunkRequest(
                    chain_id=chain_id, chain_version=chain_version, target_id=target, inode=inode
                )

            response = await self._chain_call(
                chain_id, wire.QUERY_LAST_CHUNK, build, f"query last chunk of {inode}", replica="tail"
            )
            return response.last_index * size + response.last_length if response.found else 0

        return max(await self._for_each_chain(chains, query), default=0)

    # ------------------------------------------------------------------ chunk-level API

    async def write_chunks(self, writes: Sequence[ChunkWrite]) -> list[wire.UpdateChunkResponse]:
        """Apply each write (one UpdateChunk at its chain's head; at most ``max_in_flight`` at
        once); returns the committed results in order. Every write runs to its end even when
        another fails; then the first failure (in order) is raised."""
        for write in writes:
            if not (0 <= write.offset and write.offset + len(write.data) <= write.chunk_size):
                raise ThreeFSError(
                    Code.INVALID_ARG,
                    f"write of {len(write.data)} bytes at {write.offset} overflows chunk {write.chunk} "
                    f"of {write.chunk_size} bytes",
                )
        results: list[Any] = [None] * len(writes)

        async def run(index: int, write: ChunkWrite) -> None:
            try:
                results[index] = await self._write_one(write)
            except ThreeFSError as exc:
                results[index] = exc

        async with trio.open_nursery() as nursery:
            for index, write in enumerate(writes):
                nursery.start_soon(run, index, write)
        for result in results:
            if isinstance(result, ThreeFSError):
                raise result
        return results

    async def read_chunks(self, reads: Sequence[ChunkRead]) -> list[memoryview]:
        """The bytes of each read, in order: at most ``length`` (fewer at the end of a chunk; none
        for a missing chunk). Reads are grouped into one BatchRead per storage node (cut at
        ``batch_max_ios`` / ``batch_max_bytes``), spread over the SERVING replicas round-robin,
        and checked against their CRC32C. A read that fails is retried (on another replica, or
        on the tail after STORAGE_CHUNK_NOT_COMMITTED); the first read that runs out of tries
        raises its error. The views are slices of the reply payloads, or, for reads with
        ``into``, views of ``into`` that the reply was received into."""
        return await self._reader.read(reads)

    # ------------------------------------------------------------------ routing helpers

    async def _view_with_table(self, layout: Layout) -> RoutingView:
        """The routing view, refreshed once if it lacks the layout's table version."""
        view = self.routing.view
        if layout.table_id in view.routing.chain_tables:
            if any(t.version == layout.table_version for t in view.routing.chain_tables[layout.table_id]):
                return view
        return await self.routing.refresh_on_mismatch(view.version)

    async def _chain_resolver(self, layout: Layout) -> Callable[[int], int]:
        """``chunk index -> chain id`` for ``layout`` (the table version is pinned, so later
        routing changes never change the answer)."""
        slots = await self._stripe_chains(layout)
        stripe = layout.stripe_size
        return lambda index: slots[index % stripe]

    async def _stripe_chains(self, layout: Layout) -> list[int]:
        """The chain ids of stripe slots ``0 .. stripe_size-1``."""
        view = await self._view_with_table(layout)
        table = view.chain_table(layout.table_id, layout.table_version)
        return [table.chain_ids[p] for p in stripe_positions(layout, len(table.chain_ids))]

    def choose_replica(
        self, view: RoutingView, chain_id: int, avoid: set[int] | frozenset[int] = frozenset(), *, tail: bool
    ) -> TargetInfo:
        """A SERVING replica of the chain: the last one when ``tail``, else round-robin over those
        not in ``avoid`` (over all of them when every one is avoided). Raises
        CLIENT_NO_SERVING_REPLICA (retryable) when none serves."""
        replicas = view.serving_replicas(chain_id)
        if not replicas:
            view.head(chain_id)  # raises the error that names the chain's states
        if tail:
            return replicas[-1]
        candidates = [r for r in replicas if r.target_id not in avoid] or replicas
        self._replica_counter += 1
        return pick_replica(candidates, self._replica_counter)

    async def after_failure(self, budget: RetryBudget, exc: ThreeFSError, seen: int, what: str) -> None:
        """Decide about a failed try: raise (``exc`` with ``what``) when it is not retryable or the
        budget is spent; else refresh routing when ``exc`` calls for it and pause before the next
        try (no pause when the refresh moved routing on after a mismatch)."""
        if not exc.retryable or budget.exhausted():
            raise give_up_error(exc, what, budget.attempts) from exc
        self.stats.retries += 1
        if exc.code in REFRESH_CODES:
            await self.refresh_routing(seen, budget)
            if exc.code in _RETRY_AT_ONCE and self.routing.version > seen:
                return
        pause = budget.next_pause()
        if pause is None:
            raise give_up_error(exc, what, budget.attempts) from exc
        log.debug(
            "%s failed (%s); retrying in %.3f s",
            what,
            exc,
            pause,
            extra={"attempt": budget.attempts, "code": exc.code.name},
        )
        await trio.sleep(pause)

    async def refresh_routing(self, seen: int, budget: RetryBudget) -> None:
        """Refresh routing past version ``seen`` within the budget's time; a failure is logged
        (the next try then uses the routing it has)."""
        remaining = budget.remaining()
        if remaining <= 0:
            return
        self.stats.refreshes += 1
        try:
            with trio.move_on_after(remaining):
                await self.routing.refresh_on_mismatch(
                    seen, timeout_s=min(remaining, self.config.attempt_timeout_s)
                )
        except ThreeFSError as exc:
            log.warning("routing refresh failed (keeping version %d): %s", self.routing.version, exc)

    # ------------------------------------------------------------------ updates and chain calls

    async def _write_one(self, write: ChunkWrite) -> wire.UpdateChunkResponse:
        async with self.limiter:
            checksum = crc32c.crc32c(write.data)

            def build(chain_version: int, tag: RequestTag | None) -> wire.UpdateChunkRequest:
                return wire.UpdateChunkRequest(
                    tag=tag,  # type: ignore[arg-type]
                    chain_id=write.chain_id,
                    chain_version=chain_version,
                    chunk=write.chunk,
                    chunk_size=write.chunk_size,
                    update_type=wire.UpdateType.WRITE,
                    offset=write.offset,
                    length=len(write.data),
                    crc32c=checksum,
                )

            return await self._chain_call(
                write.chain_id,
                wire.UPDATE_CHUNK,
                build,
                f"write {write.chunk}",
                payload=write.data,
                held=True,
            )

    async def _remove_range(self, chain_id: int, inode: int, begin: int, end: int) -> int:
        def build(chain_version: int, tag: RequestTag | None) -> wire.RemoveChunksRequest:
            return wire.RemoveChunksRequest(
                tag=tag,  # type: ignore[arg-type]
                chain_id=chain_id,
                chain_version=chain_version,
                inode=inode,
                begin_index=begin,
                end_index=end,
            )

        response = await self._chain_call(chain_id, wire.REMOVE_CHUNKS, build, f"remove chunks of {inode}")
        return response.removed

    async def _chain_call(
        self,
        chain_id: int,
        spec: MethodSpec,
        build: Callable[[int, Any], msgspec.Struct],
        what: str,
        *,
        payload: Buffer = b"",
        replica: str = "head",
        held: bool = False,
    ) -> Any:
        """Call ``spec`` on the chain's head (``build(chain_version, tag)``: an update, tagged once
        for all its tries) or tail (``build(chain_version, target_id)``), retrying as
        ``after_failure`` decides. ``held``: the caller already holds a concurrency slot."""
        tag = self.tags.take() if replica == "head" else None
        budget = RetryBudget(self.config)
        try:
            while True:
                view = self.routing.view
                seen = view.version
                try:
                    timeout = budget.attempt_timeout()  # counts the attempt; raises when out of time
                    target = (
                        view.head(chain_id)
                        if tag is not None
                        else self.choose_replica(view, chain_id, tail=True)
                    )
                    request = build(
                        view.chain(chain_id).chain_version, tag if tag is not None else target.target_id
                    )
                    address = view.node_address(target.node_id)
                    self.stats.rpcs += 1
                    if held:
                        response, _ = await self.rpc.call(
                            address, spec, request, payload=payload, timeout_s=timeout
                        )
                    else:
                        async with self.limiter:
                            response, _ = await self.rpc.call(
                                address, spec, request, payload=payload, timeout_s=timeout
                            )
                    return response
                except ThreeFSError as exc:
                    await self.after_failure(budget, exc, seen, what)
        finally:
            if tag is not None:
                self.tags.give_back(tag)

    async def _for_each_chain(self, chains: Sequence[int], call: Callable[[int], Any]) -> list[Any]:
        """``await call(chain_id)`` for every chain in parallel; the results in order, or the first
        error (in order) once all have finished."""
        results: list[Any] = [None] * len(chains)

        async def run(index: int, chain_id: int) -> None:
            try:
                results[index] = await call(chain_id)
            except ThreeFSError as exc:
                results[index] = exc

        async with trio.open_nursery() as nursery:
            for index, chain_id in enumerate(chains):
                nursery.start_soon(run, index, chain_id)
        for result in results:
            if isinstance(result, ThreeFSError):
                raise result
        return results
