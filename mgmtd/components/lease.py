"""Primary election by lease: the pure decision of what a mgmtd writes into the lease row.

A mgmtd takes the lease when nobody holds it or the holder's ``expires_ms`` has passed (a new
``term``), extends it while it holds it (same term), and otherwise leaves it alone. The lease
keeper (``mgmtd.workers.lease_keeper``) runs this inside a KV transaction.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import msgspec

from mgmtd.store.lease_store import LeaseRecord

__all__ = ["Candidate", "decide_lease", "new_instance_id", "release_record"]


@dataclass(frozen=True)
class Candidate:
    """A mgmtd process competing for the lease."""

    node_id: int
    address: str
    instance: str


def new_instance_id() -> str:
    """A random id for this process's tenure in the lease row."""
    return secrets.token_hex(8)


def decide_lease(
    current: LeaseRecord | None, me: Candidate, now_ms: int, lease_ms: int
) -> LeaseRecord | None:
    """The lease row ``me`` should write at ``now_ms``, or None when another holds it.

    - no row, or the row expired (``expires_ms <= now_ms``, whoever held it): a new term starts,
      held by ``me`` until ``now_ms + lease_ms``; an expired tenure of ``me`` itself also starts a
      new term, because the process stopped acting as primary when it expired.
    - ``me`` holds it and it has not expired: the same term, extended to ``now_ms + lease_ms``.
    """
    if current is not None and current.expires_ms > now_ms:
        if current.holder_instance != me.instance:
            return None
        return msgspec.structs.replace(current, expires_ms=now_ms + lease_ms, holder_address=me.address)
    return LeaseRecord(
        holder_node_id=me.node_id,
        holder_address=me.address,
        holder_instance=me.instance,
        term=1 if current is None else current.term + 1,
        expires_ms=now_ms + lease_ms,
        acquired_ms=now_ms,
    )


def release_record(current: LeaseRecord | None, me: Candidate, now_ms: int) -> LeaseRecord | None:
    """The row that gives the lease up at ``now_ms`` (expired at once, so a successor need not
    wait), or None when ``me`` does not hold it."""
    if current is None or current.holder_instance != me.instance or current.expires_ms <= now_ms:
        return None
    return msgspec.structs.replace(current, expires_ms=now_ms)
