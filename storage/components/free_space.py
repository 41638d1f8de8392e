"""The free-space reserve of the targets: a target whose file system has less free space than
the reserve refuses to create new chunks (STORAGE_NO_SPACE), so that a full disk stops new
files cleanly instead of failing writes halfway on the OS's ENOSPC.

``SpaceReserve`` is the pure rule (``min_free_bytes`` / ``min_free_ratio`` of the node's
config). ``FreeSpaceGuard`` applies it to one node's targets with a cached sample of each
target's free space (``ChunkStore.space``, a ``statvfs`` of the target directory for a disk
store), taken again at most every ``refresh_s`` seconds so the write path stays cheap. Writes
into chunks that already exist are not checked here (docs/storage.md, "Disk full").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from storage.store.interface import SpaceInfo
from threefs.errors import Code, ThreeFSError

__all__ = ["FreeSpaceGuard", "SpaceReserve", "format_bytes"]

log = logging.getLogger("storage.free_space")

Clock = Callable[[], float]
Sampler = Callable[[], Awaitable[SpaceInfo]]


def format_bytes(count: int) -> str:
    """``count`` bytes for people: ``512 B``, ``3.2 MiB``, ``1.0 GiB``."""
    if abs(count) < 1024:
        return f"{count} B"
    value = count / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


@dataclass(frozen=True, slots=True)
class SpaceReserve:
    """Free space a target keeps: the larger of ``min_free_bytes`` and ``min_free_ratio`` of its
    file system's capacity. Both 0: no reserve (only the OS's ENOSPC stops writes)."""

    min_free_bytes: int
    min_free_ratio: float

    @property
    def enabled(self) -> bool:
        return self.min_free_bytes > 0 or self.min_free_ratio > 0

    def required(self, capacity_bytes: int) -> int:
        """Bytes that must stay free on a file system of ``capacity_bytes``."""
        return max(self.min_free_bytes, math.ceil(self.min_free_ratio * capacity_bytes))

    def allows(self, space: SpaceInfo) -> bool:
        """Whether a target with ``space`` may create new chunks."""
        return not self.enabled or space.free_bytes >= self.required(space.capacity_bytes)

    def check(self, target_id: int, space: SpaceInfo) -> None:
        """Raise STORAGE_NO_SPACE, naming the target, its free space and the reserve, when
        ``space`` is below the reserve."""
        if self.allows(space):
            return
        required = self.required(space.capacity_bytes)
        raise ThreeFSError(
            Code.STORAGE_NO_SPACE,
            f"target {target_id} refuses new chunks: {format_bytes(space.free_bytes)} free of "
            f"{format_bytes(space.capacity_bytes)}, below its reserve of {format_bytes(required)} "
            f"(min_free_bytes {self.min_free_bytes}, min_free_ratio {self.min_free_ratio:g})",
        )


@dataclass(slots=True)
class _Sample:
    taken_at: float
    space: SpaceInfo | None
    refusing: bool = False


class FreeSpaceGuard:
    """``check_new_chunk`` for the targets of one node (trio thread only).

    A target's sample is reused for ``refresh_s`` seconds of ``clock`` (default
    ``trio.current_time``); once older, the next check takes a new one, while checks that run
    meanwhile use the old one (at most one sample in flight per target once the first is in).
    Crossing the reserve either way is logged once.
    """

    def __init__(self, reserve: SpaceReserve, refresh_s: float, *, clock: Clock | None = None) -> None:
        self.reserve = reserve
        self.refresh_s = refresh_s
        self._clock = clock or trio.current_time
        self._samples: dict[int, _Sample] = {}

    def forget(self, target_id: int) -> None:
        """Drop a target's sample (a removed target)."""
        self._samples.pop(target_id, None)

    async def check_new_chunk(self, target_id: int, sample: Sampler) -> None:
        """Raise STORAGE_NO_SPACE when target ``target_id`` is below the reserve. ``sample()``
        returns its current space (its errors propagate; the next check samples again)."""
        if not self.reserve.enabled:
            return
        entry, space = await self._sampled(target_id, sample)
        allowed = self.reserve.allows(space)
        if allowed == entry.refusing:
            entry.refusing = not allowed
            required = format_bytes(self.reserve.required(space.capacity_bytes))
            free = format_bytes(space.free_bytes)
            if allowed:
                log.info("target %d takes new chunks again: %s free, reserve %s", target_id, free, required)
            else:
                log.warning("target %d refuses new chunks: %s free, reserve %s", target_id, free, required)
        self.reserve.check(target_id, space)

    async def _sampled(self, target_id: int, sample: Sampler) -> tuple[_Sample, SpaceInfo]:
        """The target's entry and a sample no older than ``refresh_s`` (or the previous one
        while another check takes a new one)."""
        now = self._clock()
        entry = self._samples.get(target_id)
        if entry is not None and entry.space is not None and now - entry.taken_at < self.refresh_s:
            return entry, entry.space
        if entry is None:
            entry = self._samples[target_id] = _Sample(now, None)
        previous = entry.taken_at
        entry.taken_at = now  # checks meanwhile keep using the previous sample
        try:
            space = await sample()
        except BaseException:
            entry.taken_at = previous if entry.space is not None else -math.inf
            raise
        entry.space = space
        return entry, space
