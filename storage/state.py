"""The state one storage node shares between its RPC handlers and its workers: the targets, the
routing cache, the chunk locks, remembered answers, thread limiters and metrics.

Also the two checks every chain request starts with (``position``): the request's chain version
against this node's routing (a newer one refreshes routing once; an older one, or a chain this
node does not know, is STORAGE_STALE_CHAIN_VERSION), and which of this node's targets it is about.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

import trio

from client.routing import RoutingCache
from storage.components.chain_position import ChainPosition, locate
from storage.components.chunk_locks import ChunkLocks
from storage.components.dedup import RequestDedup
from storage.components.free_space import FreeSpaceGuard, SpaceReserve
from storage.components.targets import Target, TargetRegistry
from storage.config import StorageConfig
from storage.metrics import StorageMetrics, TargetSample
from threefs.errors import Code, ThreeFSError
from threefs.rpc import RpcClient
from threefs.service.short_calls import ShortCalls
from threefs.wire.mgmtd import RoutingInfo
from threefs.wire.storage import RequestTag

__all__ = ["NowMs", "StorageState", "system_now_ms"]

log = logging.getLogger("storage.state")

T = TypeVar("T")
NowMs = Callable[[], int]
_REQUEST_REFRESH_S = 2.0  # a request waits at most this long for routing it asked for


def system_now_ms() -> int:
    """Wall-clock milliseconds since the epoch (what heartbeats carry)."""
    return time.time_ns() // 1_000_000


class StorageState:
    """Everything the handlers and workers of one storage node share (trio thread only)."""

    def __init__(
        self,
        config: StorageConfig,
        targets: TargetRegistry,
        rpc: RpcClient,
        routing: RoutingCache,
        *,
        now_ms: NowMs = system_now_ms,
    ) -> None:
        self.config = config
        self.node_id = config.node_id
        self.targets = targets
        self.rpc = rpc
        self.routing = routing
        self.now_ms = now_ms
        self.metrics = StorageMetrics(self.sample_targets)
        self.locks = ChunkLocks(on_wait=self.metrics.lock_waited)
        self.dedup = RequestDedup(config.dedup_seqs_per_channel, config.dedup_max_channels)
        self.update_limiter = trio.CapacityLimiter(config.max_concurrent_updates)
        self.read_limiter = trio.CapacityLimiter(config.max_concurrent_reads)
        self.space_guard = FreeSpaceGuard(
            SpaceReserve(config.min_free_bytes, config.min_free_ratio), config.free_space_refresh_s
        )
        self.started_ms = now_ms()
        self.address = ""  # "host:port" told to mgmtd, once listening
        self.client_id = os.urandom(16)  # tags of the requests this node makes itself (resync)
        self._tag_seq = 0
        self._short_calls = ShortCalls(config.inline_store_max_s)  # chunk calls, by (target, read)
        self._heartbeat_wakeup = trio.Event()
        self._resync_wakeup = trio.Event()

    # ------------------------------------------------------------------ store calls

    async def store_call(
        self, target: Target, fn: Callable[..., T], *args: Any, read: bool = False, chunk: bool = False
    ) -> T:
        """Run ``fn(*args)`` (store I/O) in a worker thread, bounded by the update or read limiter.
        ``chunk``: a call on one chunk, which runs on the event loop instead while such calls
        (reads or updates) on ``target`` took less than ``inline_store_max_s`` on average
        lately: the GIL hand-offs of a thread hop cost the loop more than a page-cache write
        of a chunk (measured: replication-3 writes of 1 MiB chunks 132 -> 171 MiB/s).

        Raises STORAGE_TARGET_OFFLINE for a failed target; a STORAGE_IO_ERROR or ``OSError``
        marks the target failed (it then reports OFFLINE) and raises STORAGE_IO_ERROR.
        """
        target.check_usable()
        if not chunk:
            limiter = self.read_limiter if read else self.update_limiter
            with self._store_errors(target):
                return await trio.to_thread.run_sync(partial(fn, *args), limiter=limiter)
        with self._store_errors(target):
            return await self._short_calls.run(
                (target.target_id, read),
                partial(fn, *args),
                limiter=self.read_limiter if read else self.update_limiter,
            )

    def store_call_inline(self, target: Target, fn: Callable[..., T], *args: Any) -> T:
        """``store_call`` on the event loop (a small read: storage/ops/read.py), with the same
        errors and the same marking of a failed target."""
        target.check_usable()
        with self._store_errors(target):
            return fn(*args)

    @contextmanager
    def _store_errors(self, target: Target) -> Iterator[None]:
        """A STORAGE_IO_ERROR or ``OSError`` of a store call marks ``target`` failed (and wakes
        the heartbeat to tell mgmtd); an ``OSError`` becomes STORAGE_IO_ERROR."""
        try:
            yield
        except ThreeFSError as exc:
            if exc.code == Code.STORAGE_IO_ERROR:
                target.mark_failed(exc.message)
                self.wake_heartbeat()
            raise
        except OSError as exc:
            target.mark_failed(str(exc))
            self.wake_heartbeat()
            raise ThreeFSError(Code.STORAGE_IO_ERROR, f"target {target.target_id}: {exc}") from exc

    async def check_room_for_new_chunk(self, target: Target) -> None:
        """Raise STORAGE_NO_SPACE when ``target``'s free space is below the node's reserve
        (``min_free_bytes`` / ``min_free_ratio``), from a sample at most
        ``free_space_refresh_s`` old (``FreeSpaceGuard``). Changes nothing."""
        await self.space_guard.check_new_chunk(
            target.target_id, lambda: self.store_call(target, target.store.space, read=True)
        )

    # ------------------------------------------------------------------ routing

    def routing_info(self) -> RoutingInfo | None:
        """The cached routing info (None before the first refresh)."""
        return self.routing.view.routing if self.routing.version else None

    async def refresh_routing(
        self, seen_version: int | None = None, *, timeout_s: float | None = None
    ) -> None:
        """Refresh the routing cache (only past ``seen_version`` when given: one refresh for all
        the callers that saw the same version), then follow it. ``timeout_s`` bounds the wait
        (default: the mgmtd client's request timeout). Failures are logged only."""
        try:
            if seen_version is None:
                await self.routing.refresh(timeout_s=timeout_s)
            else:
                await self.routing.refresh_on_mismatch(seen_version, timeout_s=timeout_s)
        except ThreeFSError as exc:
            log.warning("routing refresh failed (keeping version %d): %s", self.routing.version, exc)
        self.observe_routing()

    def observe_routing(self) -> None:
        """Recompute the targets' local states from the cached routing; wake the heartbeat when
        one changed and the resync worker in any case (a chain may have moved)."""
        if self.targets.update_local_states(self.routing_info()):
            self.wake_heartbeat()
        self.wake_resync()

    async def position(self, chain_id: int, chain_version: int, target_id: int = 0) -> ChainPosition:
        """This node's target in chain ``chain_id`` (``target_id`` when given), checking the
        request's ``chain_version`` against routing (refreshed once when the request's is newer
        or the chain unknown). Raises STORAGE_STALE_CHAIN_VERSION, STORAGE_TARGET_NOT_FOUND
        (this node holds no such target in the chain), STORAGE_TARGET_OFFLINE (no routing yet).
        """
        routing = self.routing_info()
        chain = routing.chains.get(chain_id) if routing is not None else None
        if chain is None or chain_version > chain.chain_version:
            await self.refresh_routing(
                routing.version if routing is not None else 0, timeout_s=_REQUEST_REFRESH_S
            )
            routing = self.routing_info()
            chain = routing.chains.get(chain_id) if routing is not None else None
        if routing is None:
            raise ThreeFSError(Code.STORAGE_TARGET_OFFLINE, f"node {self.node_id} has no routing info yet")
        if chain is None:
            raise ThreeFSError(
                Code.STORAGE_STALE_CHAIN_VERSION, f"no chain {chain_id} in routing version {routing.version}"
            )
        if chain_version != chain.chain_version:
            raise ThreeFSError(
                Code.STORAGE_STALE_CHAIN_VERSION,
                f"chain {chain_id} is at version {chain.chain_version} on node {self.node_id}, "
                f"not {chain_version}",
            )
        ids = self.targets.ids() if not target_id else frozenset({target_id})
        found = locate(chain, ids)
        if found is None or found.target_id not in self.targets:
            which = f"target {target_id}" if target_id else "no target"
            raise ThreeFSError(
                Code.STORAGE_TARGET_NOT_FOUND,
                f"node {self.node_id} holds {which} of chain {chain_id} version {chain.chain_version}",
            )
        return found

    def current_position(self, chain_id: int, target_id: int) -> ChainPosition | None:
        """``target_id``'s position in the latest cached version of the chain (None: not in it)."""
        routing = self.routing_info()
        chain = routing.chains.get(chain_id) if routing is not None else None
        return locate(chain, frozenset({target_id})) if chain is not None else None

    # ------------------------------------------------------------------ workers' wakeups, tags

    def next_tag(self) -> RequestTag:
        """A fresh tag for a request this node makes itself (resync)."""
        self._tag_seq += 1
        return RequestTag(client_id=self.client_id, channel=0, seq=self._tag_seq)

    def wake_heartbeat(self) -> None:
        self._heartbeat_wakeup.set()

    async def wait_heartbeat_wakeup(self, timeout_s: float) -> None:
        """Sleep ``timeout_s`` or until ``wake_heartbeat``."""
        with trio.move_on_after(timeout_s):
            await self._heartbeat_wakeup.wait()
        self._heartbeat_wakeup = trio.Event()

    def wake_resync(self) -> None:
        self._resync_wakeup.set()

    async def wait_resync_wakeup(self, timeout_s: float) -> None:
        """Sleep ``timeout_s`` or until ``wake_resync``."""
        with trio.move_on_after(timeout_s):
            await self._resync_wakeup.wait()
        self._resync_wakeup = trio.Event()

    def sample_targets(self) -> list[TargetSample]:
        """Per-target figures for the metrics endpoint."""
        samples = []
        for target in self.targets:
            space = target.space
            samples.append(
                (
                    target.target_id,
                    target.local_state,
                    space.used_bytes if space else 0,
                    space.capacity_bytes if space else 0,
                    space.chunk_count if space else 0,
                )
            )
        return samples
