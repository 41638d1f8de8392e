"""Chunk-level I/O requests and the pieces ``StorageClient`` builds on: request tags for
idempotent updates, the per-I/O retry budget, and grouping reads into per-node batches.

Nothing here does I/O; ``client.storage`` drives it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import trio

from client.config import StorageClientConfig
from threefs.errors import Code, ThreeFSError
from threefs.wire.storage import ChunkKey, ReadIO, RequestTag

__all__ = [
    "REFRESH_CODES",
    "Buffer",
    "ChunkRead",
    "ChunkWrite",
    "RequestTags",
    "RetryBudget",
    "batch_reads",
    "give_up_error",
    "pick_replica",
]

Buffer = bytes | bytearray | memoryview
T = TypeVar("T")

# Retryable errors after which the routing info may be out of date: refresh it (once for every
# caller that saw the same version) before the next try.
REFRESH_CODES = frozenset(
    {
        Code.MGMTD_STALE_ROUTING,
        Code.STORAGE_STALE_CHAIN_VERSION,
        Code.STORAGE_NOT_HEAD,
        Code.STORAGE_TARGET_OFFLINE,
        Code.STORAGE_SYNCING,
        Code.CLIENT_NO_SERVING_REPLICA,
        Code.RPC_CONNECT_FAILED,
    }
)


@dataclass(frozen=True, slots=True)
class ChunkWrite:
    """Write ``data`` at ``offset`` of chunk ``chunk`` (a chunk of ``chunk_size`` bytes) on chain
    ``chain_id``. ``offset + len(data)`` must not exceed ``chunk_size``."""

    chain_id: int
    chunk: ChunkKey
    chunk_size: int
    offset: int
    data: Buffer


@dataclass(frozen=True, slots=True)
class ChunkRead:
    """Read up to ``length`` bytes at ``offset`` of chunk ``chunk`` on chain ``chain_id``.

    ``into``, when given, is a writable byte view of at least ``length`` bytes that the reply
    may be received into directly (the read's result is then a view of it)."""

    chain_id: int
    chunk: ChunkKey
    offset: int
    length: int
    into: memoryview | None = None


class RequestTags:
    """Tags for updates: one ``client_id`` (16 random bytes) per client, a channel per update in
    flight, and per channel a sequence number that increases with every new update. ``take``
    hands out a channel no other update in flight holds, with its next sequence number;
    ``give_back`` returns the channel once the update (all its retries) is over. Retries reuse
    the tag they were given."""

    __slots__ = ("_free", "_next_channel", "_seq", "client_id")

    def __init__(self, client_id: bytes) -> None:
        if len(client_id) != 16:
            raise ThreeFSError(Code.INVALID_ARG, f"client id must be 16 bytes, not {len(client_id)}")
        self.client_id = client_id
        self._free: list[int] = []
        self._next_channel = 1
        self._seq: dict[int, int] = {}

    def take(self) -> RequestTag:
        if self._free:
            channel = self._free.pop()
        else:
            channel = self._next_channel
            self._next_channel += 1
        seq = self._seq.get(channel, 0) + 1
        self._seq[channel] = seq
        return RequestTag(self.client_id, channel, seq)

    def give_back(self, tag: RequestTag) -> None:
        self._free.append(tag.channel)

    @property
    def channels(self) -> int:
        """How many channels exist (the most updates that were ever in flight at once)."""
        return self._next_channel - 1


class RetryBudget:
    """The tries left to one chunk I/O: at most ``config.max_attempts`` attempts, all before a
    deadline ``config.request_timeout_s`` from creation, with doubling, jittered pauses."""

    __slots__ = ("_backoff", "_config", "attempts", "deadline")

    def __init__(self, config: StorageClientConfig) -> None:
        self._config = config
        self.deadline = trio.current_time() + config.request_timeout_s
        self.attempts = 0
        self._backoff = config.retry_initial_backoff_s

    def attempt_timeout(self) -> float:
        """Count one attempt; its RPC deadline (the attempt timeout, cut to the time left).
        Raises RPC_DEADLINE_EXCEEDED when no time is left."""
        remaining = self.deadline - trio.current_time()
        if remaining <= 0:
            raise ThreeFSError(Code.RPC_DEADLINE_EXCEEDED, "no time left for another attempt")
        self.attempts += 1
        return min(self._config.attempt_timeout_s, remaining)

    def exhausted(self) -> bool:
        return self.attempts >= self._config.max_attempts or trio.current_time() >= self.deadline

    def next_pause(self) -> float | None:
        """The pause before the next try, or None when it would end past the deadline."""
        pause = self._backoff * random.uniform(0.5, 1.0)  # jitter only: placement never uses random
        self._backoff = min(2 * self._backoff, self._config.retry_max_backoff_s)
        return pause if trio.current_time() + pause < self.deadline else None

    def remaining(self) -> float:
        return max(self.deadline - trio.current_time(), 0.0)


def give_up_error(exc: ThreeFSError, what: str, attempts: int) -> ThreeFSError:
    """``exc`` with what was being done and how many attempts it took, same code."""
    suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
    return ThreeFSError(exc.code, f"{what}: {exc.message}{suffix}")


def batch_reads(
    reads: Iterable[tuple[int, T, ReadIO]], max_ios: int, max_bytes: int
) -> list[tuple[int, list[tuple[T, ReadIO]]]]:
    """Group ``(node_id, key, io)`` by node, in order, then cut each node's list into batches of
    at most ``max_ios`` reads and ``max_bytes`` requested bytes (a single larger read still gets
    a batch of its own). Returns ``(node_id, [(key, io), ...])`` batches, nodes in first-seen
    order."""
    per_node: dict[int, list[tuple[T, ReadIO]]] = {}
    for node_id, key, io in reads:
        per_node.setdefault(node_id, []).append((key, io))
    batches: list[tuple[int, list[tuple[T, ReadIO]]]] = []
    for node_id, items in per_node.items():
        current: list[tuple[T, ReadIO]] = []
        size = 0
        for key, io in items:
            if current and (len(current) >= max_ios or size + io.length > max_bytes):
                batches.append((node_id, current))
                current, size = [], 0
            current.append((key, io))
            size += io.length
        if current:
            batches.append((node_id, current))
    return batches


def pick_replica(candidates: Sequence[T], counter: int) -> T:
    """Round-robin choice: ``candidates[counter % len(candidates)]`` (never empty)."""
    return candidates[counter % len(candidates)]
