"""Batched chunk reads for ``StorageClient.read_chunks``: pick a replica per read, send one
BatchRead per storage node (bounded batches, in parallel), check each result's CRC32C, and retry
the reads that failed, round after round, until each has its bytes or runs out of tries.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import crc32c
import trio

from client.chunk_io import REFRESH_CODES, ChunkRead, RetryBudget, batch_reads, give_up_error
from client.routing import RoutingView
from threefs.errors import Code, ThreeFSError
from threefs.rpc.frame import ScatteredPayload
from threefs.wire import storage as wire
from threefs.wire.envelope import Envelope

if TYPE_CHECKING:
    from client.storage import StorageClient

__all__ = ["BatchReader"]

log = logging.getLogger("client.storage")

_EMPTY = memoryview(b"")
# One read's outcome in a round: (read index, target asked, bytes or the error).
Outcome = tuple[int, int, memoryview | ThreeFSError]


class BatchReader:
    """The read path of one ``StorageClient`` (uses its RPC client, routing, limiter and retry
    decisions)."""

    def __init__(self, client: StorageClient) -> None:
        self._client = client

    async def read(self, reads: Sequence[ChunkRead]) -> list[memoryview]:
        """See ``StorageClient.read_chunks``."""
        client = self._client
        config = client.config
        for read in reads:
            if read.offset < 0 or read.length < 0:
                raise ThreeFSError(Code.INVALID_ARG, f"read of {read.chunk}: negative offset or length")
        results: list[memoryview] = [_EMPTY] * len(reads)
        budgets = [RetryBudget(config) for _ in reads]
        avoid: list[set[int]] = [set() for _ in reads]
        at_tail: set[int] = set()
        pending = [i for i, read in enumerate(reads) if read.length > 0]
        while pending:
            view = client.routing.view
            seen = view.version
            outcomes: list[Outcome] = []
            planned: list[tuple[int, int, wire.ReadIO]] = []
            for i in pending:
                read = reads[i]
                try:
                    budgets[i].attempt_timeout()  # counts the attempt; raises when out of time
                    target = client.choose_replica(view, read.chain_id, avoid[i], tail=i in at_tail)
                    io = wire.ReadIO(
                        chain_id=read.chain_id,
                        chain_version=view.chain(read.chain_id).chain_version,
                        target_id=target.target_id,
                        chunk=read.chunk,
                        offset=read.offset,
                        length=read.length,
                    )
                except ThreeFSError as exc:
                    outcomes.append((i, 0, exc))
                    continue
                planned.append((target.node_id, i, io))
            batches = batch_reads(planned, config.batch_max_ios, config.batch_max_bytes)
            timeouts = [
                min(min(budgets[i].remaining() for i, _ in items), config.attempt_timeout_s)
                for _, items in batches
            ]
            if len(batches) == 1:  # the common small read: no task to spawn
                await self._read_batch(view, batches[0][0], batches[0][1], timeouts[0], reads, outcomes)
            else:
                async with trio.open_nursery() as nursery:
                    for (node_id, items), timeout in zip(batches, timeouts, strict=True):
                        nursery.start_soon(self._read_batch, view, node_id, items, timeout, reads, outcomes)
            failed: list[tuple[int, ThreeFSError]] = []
            for i, target_id, outcome in outcomes:
                if isinstance(outcome, ThreeFSError):
                    failed.append((i, outcome))
                    if outcome.code == Code.STORAGE_CHUNK_NOT_COMMITTED:
                        at_tail.add(i)
                    elif target_id:
                        avoid[i].add(target_id)
                else:
                    results[i] = outcome
            if not failed:
                break
            failed.sort(key=lambda item: item[0])
            await self._before_next_round(failed, budgets, reads, seen)
            pending = [i for i, _ in failed]
        return results

    async def _before_next_round(
        self,
        failed: list[tuple[int, ThreeFSError]],
        budgets: list[RetryBudget],
        reads: Sequence[ChunkRead],
        seen: int,
    ) -> None:
        """Raise the first failure that may not be retried; else refresh and pause once for the
        round (as ``StorageClient.after_failure`` decides for its first failure)."""
        for i, exc in failed:
            if not exc.retryable or budgets[i].exhausted():
                raise give_up_error(exc, f"read {reads[i].chunk}", budgets[i].attempts) from exc
        # Every failure is retryable with budget left: one decision (refresh, pause) for the round,
        # taken on a failure that calls for a routing refresh if there is one.
        i, exc = min(failed, key=lambda item: item[1].code not in REFRESH_CODES)
        await self._client.after_failure(budgets[i], exc, seen, f"read {reads[i].chunk}")

    async def _read_batch(
        self,
        view: RoutingView,
        node_id: int,
        items: list[tuple[int, wire.ReadIO]],
        timeout_s: float,
        reads: Sequence[ChunkRead],
        outcomes: list[Outcome],
    ) -> None:
        """One BatchRead at ``node_id``; appends an outcome per read (the RPC's error to each when
        the call fails)."""
        client = self._client
        request = wire.BatchReadRequest(reads=[io for _, io in items])
        sink = None
        if all(reads[i].into is not None for i, _ in items):

            def sink(envelope: Envelope, payload_len: int) -> list[memoryview] | None:
                return _destinations(items, reads, envelope, payload_len)

        try:
            address = view.node_address(node_id)
            if timeout_s <= 0:
                raise ThreeFSError(Code.RPC_DEADLINE_EXCEEDED, "no time left for another attempt")
            client.stats.rpcs += 1
            async with client.limiter:
                response, payload = await client.rpc.call(
                    address, wire.BATCH_READ, request, timeout_s=timeout_s, sink=sink
                )
        except ThreeFSError as exc:
            outcomes.extend((i, io.target_id, exc) for i, io in items)
            return
        outcomes.extend(_parse(items, response, payload, node_id, client.config.verify_checksums))


def _destinations(
    items: list[tuple[int, wire.ReadIO]], reads: Sequence[ChunkRead], envelope: Envelope, payload_len: int
) -> list[memoryview] | None:
    """The caller's buffers to receive a BatchRead reply into (one view per read that returned
    bytes, in order), or None when the reply does not fit them (``_parse`` then reports it)."""
    try:
        response = wire.BATCH_READ.response_decoder.decode(envelope.body)
    except Exception:
        return None
    if len(response.results) != len(items):
        return None
    views = []
    for (i, io), result in zip(items, response.results, strict=True):
        if result.code == 0 and result.length:
            into = reads[i].into
            if into is None or result.length > io.length or result.length > len(into):
                return None
            views.append(into[: result.length])
    return views if sum(map(len, views)) == payload_len else None


def _parse(
    items: list[tuple[int, wire.ReadIO]],
    response: wire.BatchReadResponse,
    payload: bytes | bytearray | ScatteredPayload,
    node_id: int,
    verify: bool,
) -> list[Outcome]:
    """Each read's bytes (sliced out of ``payload``, or the caller's view it was received into)
    or error. A reply that does not match the request (result count, lengths) fails every read
    with RPC_INVALID_BODY."""
    results = response.results
    expected = sum(r.length for r in results if r.code == 0)
    if len(results) != len(items) or expected != len(payload):
        bad = ThreeFSError(
            Code.RPC_INVALID_BODY,
            f"BatchRead reply of node {node_id}: {len(results)} results and {len(payload)} bytes "
            f"for {len(items)} reads ({expected} bytes announced)",
        )
        return [(i, io.target_id, bad) for i, io in items]
    if type(payload) is ScatteredPayload:
        return _parse_scattered(items, results, payload, verify)
    data = memoryview(payload)
    position = 0
    outcomes: list[Outcome] = []
    for (i, io), result in zip(items, results, strict=True):
        if result.code == Code.STORAGE_CHUNK_NOT_FOUND:
            outcomes.append((i, io.target_id, _EMPTY))  # a missing chunk is a hole
            continue
        if result.code:
            outcomes.append((i, io.target_id, ThreeFSError(result.code, result.message)))
            continue
        piece = data[position : position + result.length]
        position += result.length
        if result.length > io.length:
            error = ThreeFSError(
                Code.RPC_INVALID_BODY,
                f"node {node_id} returned {result.length} bytes of {io.chunk} for a read of {io.length}",
            )
            outcomes.append((i, io.target_id, error))
        elif verify and (crc := crc32c.crc32c(piece)) != result.crc32c:
            outcomes.append((i, io.target_id, _mismatch(io, result, crc)))
        else:
            outcomes.append((i, io.target_id, piece))
    return outcomes


def _parse_scattered(
    items: list[tuple[int, wire.ReadIO]],
    results: list[wire.ReadResult],
    payload: ScatteredPayload,
    verify: bool,
) -> list[Outcome]:
    """``_parse`` for a reply received into the caller's views (``_destinations`` checked the
    lengths); the reader computed each view's CRC32C as the bytes arrived."""
    outcomes: list[Outcome] = []
    views = iter(zip(payload.views, payload.crcs, strict=True))
    for (i, io), result in zip(items, results, strict=True):
        if result.code == Code.STORAGE_CHUNK_NOT_FOUND:
            outcomes.append((i, io.target_id, _EMPTY))
        elif result.code:
            outcomes.append((i, io.target_id, ThreeFSError(result.code, result.message)))
        elif not result.length:
            outcomes.append((i, io.target_id, _EMPTY))
        else:
            view, crc = next(views)
            if verify and crc != result.crc32c:
                outcomes.append((i, io.target_id, _mismatch(io, result, crc)))
            else:
                outcomes.append((i, io.target_id, view))
    return outcomes


def _mismatch(io: wire.ReadIO, result: wire.ReadResult, crc: int) -> ThreeFSError:
    error = ThreeFSError(
        Code.STORAGE_CHECKSUM_MISMATCH,
        f"{io.chunk} [{io.offset}, +{result.length}) from target {io.target_id}: CRC32C "
        f"{crc:#010x} != {result.crc32c:#010x}",
    )
    log.warning("%s", error.message)
    return error
