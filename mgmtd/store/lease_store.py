"""The mgmtd primary lease row (key ``LEAS``) and the fence every routing write checks.

The row says which mgmtd process is primary until when. Times are wall-clock milliseconds
(every mgmtd of a cluster reads the same clock, or clocks kept close by NTP). ``term`` grows by
one on every change of holder (or after the holder let the lease lapse), so a write fenced by
``(holder_instance, term)`` can only commit while that exact tenure lasts.
"""

from __future__ import annotations

import msgspec

from threefs.errors import Code, ThreeFSError
from threefs.kv import Transaction
from threefs.kv.keys import lease_key

__all__ = ["LeaseLost", "LeaseRecord", "check_fence", "read_lease", "write_lease"]


class LeaseLost(ThreeFSError):
    """``MGMTD_LEASE_LOST`` raised inside a transaction. The KV retry driver must not retry it
    (another attempt would read the same lease row), so it is not retryable *here*; callers of
    mgmtd still see the retryable code, which sends them to the new primary."""

    def __init__(self, message: str) -> None:
        super().__init__(Code.MGMTD_LEASE_LOST, message)

    @property
    def retryable(self) -> bool:
        return False


class LeaseRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The lease row. ``holder_instance`` is a random id of the holder process (so a restarted
    mgmtd with the same node id, or a misconfigured duplicate, never mistakes the row for its
    own); ``expires_ms`` is when others may take it; ``acquired_ms`` when this term began."""

    holder_node_id: int
    holder_address: str
    holder_instance: str
    term: int
    expires_ms: int
    acquired_ms: int


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(LeaseRecord)


def read_lease(txn: Transaction) -> LeaseRecord | None:
    """The lease row, or None when no mgmtd ever took it. Adds a read conflict on it."""
    raw = txn.get(lease_key())
    if raw is None:
        return None
    try:
        return _DECODER.decode(raw)
    except msgspec.DecodeError as exc:
        raise ThreeFSError(Code.INTERNAL, f"the mgmtd lease row does not decode: {exc}") from exc


def write_lease(txn: Transaction, record: LeaseRecord) -> None:
    txn.set(lease_key(), _ENCODER.encode(record))


def check_fence(txn: Transaction, holder_instance: str, term: int, now_ms: int) -> LeaseRecord:
    """Raise ``LeaseLost`` (``MGMTD_LEASE_LOST``) unless this process still holds term ``term``
    of the lease at ``now_ms``. Reading the row inside the writing transaction makes the commit
    conflict with (or be ordered before) any takeover, so a deposed primary's write never lands
    after it.
    """
    lease = read_lease(txn)
    if lease is None or lease.holder_instance != holder_instance or lease.term != term:
        holder = "nobody" if lease is None else f"mgmtd {lease.holder_node_id} (term {lease.term})"
        raise LeaseLost(f"the primary lease is now held by {holder}")
    if lease.expires_ms <= now_ms:
        raise LeaseLost(f"the primary lease (term {term}) expired {now_ms - lease.expires_ms} ms ago")
    return lease
