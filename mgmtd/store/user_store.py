"""Users in the KV engine: ``USER`` + name (UTF-8) -> msgpack ``UserRecord`` (info and 32-byte key).

The key itself is stored, not a digest of it: the handshake is an HMAC challenge, so whoever
checks a token needs the key (docs/security.md says who can read the KV store). Writes go
through ``write_user`` / ``delete_user`` with the lease fence, so only the primary changes users.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from mgmtd.store.lease_store import check_fence
from threefs.errors import Code, ThreeFSError
from threefs.kv import Transaction, prefix_range
from threefs.kv.keys import Prefix, user_key
from threefs.wire.mgmtd import UserRecord

__all__ = ["Fence", "delete_user", "load_users", "read_user", "write_user"]

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(UserRecord)


class Fence(NamedTuple):
    """The lease tenure a write must commit under (``check_fence``)."""

    holder_instance: str
    term: int
    now_ms: int


def _key(name: str) -> bytes:
    return user_key(name.encode())


def _decode(raw: bytes, key: bytes) -> UserRecord:
    try:
        return _DECODER.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ThreeFSError(Code.INTERNAL, f"stored user under {key!r} does not decode: {exc}") from exc


def read_user(txn: Transaction, name: str) -> UserRecord | None:
    """User ``name``, or None."""
    key = _key(name)
    raw = txn.get(key)
    return None if raw is None else _decode(raw, key)


def load_users(txn: Transaction) -> list[UserRecord]:
    """Every user, in name order."""
    begin, end = prefix_range(Prefix.USER.value)
    return [_decode(value, key) for key, value in txn.get_range(begin, end)]


def write_user(txn: Transaction, record: UserRecord, fence: Fence) -> None:
    """Put ``record`` (MGMTD_LEASE_LOST, nothing written, unless ``fence`` still holds)."""
    check_fence(txn, *fence)
    txn.set(_key(record.info.name), _ENCODER.encode(record))


def delete_user(txn: Transaction, name: str, fence: Fence) -> None:
    """Remove user ``name`` (MGMTD_LEASE_LOST, nothing removed, unless ``fence`` still holds)."""
    check_fence(txn, *fence)
    txn.clear(_key(name))
