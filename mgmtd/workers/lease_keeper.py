"""The lease keeper: takes the primary lease when it is free, extends it while this mgmtd holds
it, and notices when another mgmtd holds it.

Timing: the holder extends every ``lease_s / 3``, so two missed extensions still leave it a
third of a lease. A mgmtd that sees another's lease wakes at that lease's expiry (or every
``lease_s / 3``, whichever is first) and takes it at once if it was not extended: a successor
therefore takes over at most ``lease_s`` (plus one KV transaction) after the primary's last
extension, i.e. within one lease period of the primary's death.
"""

from __future__ import annotations

import logging
from functools import partial

import trio

from mgmtd.components.lease import Candidate, decide_lease, release_record
from mgmtd.state import MgmtdState
from mgmtd.store import LeaseRecord, ensure_cluster, load_routing, read_lease, write_lease
from threefs.errors import Code, ThreeFSError
from threefs.kv import Transaction, run_transaction_async
from threefs.wire.mgmtd import RoutingInfo

__all__ = ["LeaseKeeper"]

log = logging.getLogger("mgmtd.lease")

_MIN_DELAY_S = 0.005


def _acquire(
    txn: Transaction, *, me: Candidate, now_ms: int, lease_ms: int, term_loaded: int, cluster_id: str
) -> tuple[LeaseRecord | None, RoutingInfo | None]:
    """Take or extend the lease if ``me`` may; returns the lease row afterwards and, when a term
    starts whose routing info this process has not loaded (``term_loaded``), the routing info
    read in the same transaction, so no write of an earlier primary can be missed."""
    current = read_lease(txn)
    record = decide_lease(current, me, now_ms, lease_ms)
    if record is None:
        return current, None
    routing = None
    if record.term != term_loaded:
        ensure_cluster(txn, cluster_id, now_ms)
        routing = load_routing(txn, cluster_id)
    write_lease(txn, record)
    return record, routing


def _release(txn: Transaction, *, me: Candidate, now_ms: int) -> bool:
    record = release_record(read_lease(txn), me, now_ms)
    if record is not None:
        write_lease(txn, record)
    return record is not None


class LeaseKeeper:
    """Keeps ``state``'s view of the lease current; ``run_once`` is one read-and-maybe-write."""

    def __init__(self, state: MgmtdState) -> None:
        self.state = state

    @property
    def renew_interval_s(self) -> float:
        return self.state.config.lease_s / 3

    async def run_once(self) -> bool:
        """Take, extend or observe the lease; returns whether this mgmtd is primary afterwards.

        A KV failure is logged and changes nothing: a primary stays primary until its lease
        expires by its own clock (``MgmtdState.holds_lease``), which it then does without any
        KV access. A store that belongs to another cluster id is logged and never taken.
        """
        state = self.state
        if not state.address:
            raise ThreeFSError(
                Code.INTERNAL, "the lease keeper needs the mgmtd's address (start the server first)"
            )
        term_loaded = state.lease.term if state.is_primary and state.lease is not None else 0
        acquire = partial(
            _acquire,
            me=state.candidate(),
            now_ms=state.now_ms(),
            lease_ms=state.config.lease_ms,
            term_loaded=term_loaded,
            cluster_id=state.config.cluster_id,
        )
        try:
            lease, routing = await run_transaction_async(state.engine, acquire)
        except ThreeFSError as exc:
            log.warning("lease check failed: %s", exc)
            return state.is_primary
        if routing is not None and lease is not None:
            state.become_primary(lease, routing)
        else:
            state.observe_lease(lease)
        return state.is_primary

    def next_delay_s(self) -> float:
        """Seconds until the next ``run_once``: a renewal interval for the holder; for the others
        the time left on the holder's lease, capped by the renewal interval."""
        state = self.state
        if state.holds_lease():
            return self.renew_interval_s
        primary = state.known_primary()
        if primary is None:
            return _MIN_DELAY_S if state.lease is not None else self.renew_interval_s
        left_s = (primary.expires_ms - state.now_ms() + 1) / 1000
        return max(_MIN_DELAY_S, min(self.renew_interval_s, left_s))

    async def run_forever(self) -> None:
        """Sleep ``next_delay_s`` then ``run_once``, until cancelled (the first check is the
        caller's ``run_once``, so startup can wait for it)."""
        while True:
            await trio.sleep(self.next_delay_s())
            await self.run_once()

    async def release(self) -> None:
        """Give the lease up (expire it now) if this mgmtd holds it, and stop being primary, so a
        successor takes over without waiting for the lease to run out. KV errors are logged."""
        state = self.state
        if state.holds_lease():
            try:
                released = await run_transaction_async(
                    state.engine, partial(_release, me=state.candidate(), now_ms=state.now_ms())
                )
                if released:
                    log.info("released the primary lease (term %d)", state.lease.term if state.lease else 0)
            except ThreeFSError as exc:
                log.warning("could not release the lease: %s", exc)
        state.step_down("shutting down", level=logging.INFO)
