"""The state one mgmtd process shares between its RPC handlers and its workers.

It knows whether this process is primary (it holds an unexpired lease term and has loaded the
routing info of that term), holds the routing info while it is, and applies every routing
change through ``mutate``: one change at a time (a trio lock), computed by a synchronous
function (so nothing else runs between reading and changing), committed to the KV engine fenced
by the lease term, and only then made visible in memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

import trio

from mgmtd.components.lease import Candidate, new_instance_id
from mgmtd.components.live import LiveStatus
from mgmtd.components.routing_edit import RoutingEdit
from mgmtd.config import MgmtdConfig
from mgmtd.store import LeaseRecord, commit_changes
from threefs.errors import Code, ThreeFSError
from threefs.kv import Engine, run_transaction_async
from threefs.wire.mgmtd import RoutingInfo, not_primary_message

__all__ = ["Committed", "MgmtdState", "NowMs", "system_now_ms"]

log = logging.getLogger("mgmtd.state")

T = TypeVar("T")
NowMs = Callable[[], int]


def system_now_ms() -> int:
    """Wall-clock milliseconds since the epoch (the clock lease rows and heartbeats use)."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Committed(Generic[T]):
    """The outcome of ``MgmtdState.mutate``: what the change function returned, and the routing
    version afterwards (unchanged when the function changed nothing)."""

    result: T
    version: int
    changed: bool


class MgmtdState:
    """One mgmtd's view of the cluster. ``now_ms`` is injectable so tests drive wall time (e.g.
    from trio's MockClock); it is only called from the trio thread."""

    def __init__(
        self, config: MgmtdConfig, engine: Engine, *, now_ms: NowMs = system_now_ms, instance: str = ""
    ) -> None:
        self.config = config
        self.engine = engine
        self.now_ms = now_ms
        self.instance = instance or new_instance_id()
        self.address = ""  # set once the RPC server listens
        self.live = LiveStatus()
        self.lease: LeaseRecord | None = None  # the last lease row seen
        self.heartbeats_accepted = 0
        self.heartbeats_refused = 0
        self._routing: RoutingInfo | None = None  # only while primary
        self._node_targets: dict[int, list[int]] = {}
        self._lock = trio.Lock()
        self._updater_wakeup = trio.Event()

    # ---- primaryship ------------------------------------------------------------------------

    def candidate(self) -> Candidate:
        return Candidate(self.config.node_id, self.address, self.instance)

    def holds_lease(self, now_ms: int | None = None) -> bool:
        """True while this process holds an unexpired lease term."""
        lease = self.lease
        now = self.now_ms() if now_ms is None else now_ms
        return lease is not None and lease.holder_instance == self.instance and now < lease.expires_ms

    @property
    def is_primary(self) -> bool:
        return self._routing is not None and self.holds_lease()

    @property
    def routing(self) -> RoutingInfo | None:
        """The routing info while primary (None otherwise); never changed in place."""
        return self._routing if self.is_primary else None

    def known_primary(self) -> LeaseRecord | None:
        """The lease row of the primary as last seen, or None when no unexpired one is known."""
        lease = self.lease
        if lease is None or lease.expires_ms <= self.now_ms():
            return None
        return lease

    def require_primary(self) -> RoutingInfo:
        """The routing info; raises ``MGMTD_NOT_PRIMARY`` naming the known primary otherwise."""
        routing = self.routing
        if routing is None:
            primary = self.known_primary()
            address = (
                "" if primary is None or primary.holder_instance == self.instance else primary.holder_address
            )
            raise ThreeFSError(Code.MGMTD_NOT_PRIMARY, not_primary_message(address))
        return routing

    def become_primary(self, lease: LeaseRecord, routing: RoutingInfo) -> None:
        """Start a term: ``routing`` was loaded in the transaction that took ``lease``."""
        self.lease = lease
        self._install(routing)
        self.live.reset(routing, self.now_ms())
        self.wake_updater()
        log.info(
            "primary: took lease term %d, routing version %d, %d nodes, %d chains",
            lease.term,
            routing.version,
            len(routing.nodes),
            len(routing.chains),
        )

    def observe_lease(self, lease: LeaseRecord | None) -> None:
        """Record the lease row as read: extended by this process, or held by another."""
        self.lease = lease
        if lease is not None and lease.holder_instance != self.instance and self._routing is not None:
            self.step_down(f"the lease is held by mgmtd {lease.holder_node_id} (term {lease.term})")

    def step_down(self, reason: str, term: int | None = None, *, level: int = logging.WARNING) -> None:
        """Stop acting as primary (only if still in ``term``, when given) and forget the routing
        info; the next takeover loads it again."""
        if term is not None and (self.lease is None or self.lease.term != term):
            return
        if self._routing is not None:
            log.log(level, "no longer primary: %s", reason)
        self._routing = None
        self._node_targets = {}
        self.live = LiveStatus()

    # ---- changes ----------------------------------------------------------------------------

    def node_targets(self, node_id: int) -> list[int]:
        """Ids of the targets on node ``node_id`` in the current routing info."""
        return self._node_targets.get(node_id, [])

    def _install(self, routing: RoutingInfo) -> None:
        index: dict[int, list[int]] = {}
        for target in routing.targets.values():
            index.setdefault(target.node_id, []).append(target.target_id)
        self._routing = routing
        self._node_targets = index

    async def mutate(self, change: Callable[[RoutingEdit], T]) -> Committed[T]:
        """Apply ``change`` to the routing info and commit it.

        ``change(edit)`` is synchronous: it reads through ``edit``, puts new structs and
        returns a result, or raises ``ThreeFSError`` to refuse (nothing changes). When it
        changed anything, the change is committed to the KV engine fenced by the lease term and
        the routing version goes up by one. Raises ``MGMTD_NOT_PRIMARY`` when this process is
        not primary, ``MGMTD_LEASE_LOST`` (and steps down) when the lease was lost meanwhile,
        and KV errors when the engine fails; in all these cases nothing changed.
        """
        async with self._lock:
            routing = self.require_primary()
            edit = RoutingEdit(routing)
            result = change(edit)
            if not edit.changed:
                return Committed(result, routing.version, False)
            term = self.lease.term if self.lease is not None else 0
            write = partial(
                commit_changes,
                changes=edit.changes(),
                holder_instance=self.instance,
                term=term,
                now_ms=self.now_ms(),
            )
            try:
                version = await run_transaction_async(self.engine, write)
            except ThreeFSError as exc:
                if exc.code == Code.MGMTD_LEASE_LOST:
                    self.step_down(exc.message, term)
                raise
            if self._routing is routing:  # else a takeover reloaded it (with this change)
                self._install(edit.build(version))
            return Committed(result, version, True)

    # ---- the chain updater's wake-up --------------------------------------------------------

    def wake_updater(self) -> None:
        """Ask the chain updater to run now (a local state or node status changed)."""
        self._updater_wakeup.set()

    async def wait_updater_wakeup(self, timeout_s: float) -> None:
        """Return after ``timeout_s`` or as soon as ``wake_updater`` is called (consumes it)."""
        with trio.move_on_after(timeout_s):
            await self._updater_wakeup.wait()
        self._updater_wakeup = trio.Event()
