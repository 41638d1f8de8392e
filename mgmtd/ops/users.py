"""The user methods (docs/security.md): UserAdd, UserList, UserRemove, UserSetToken (admin),
UserKeys (cluster members only), UserWhoAmI (anyone), and the directory this mgmtd checks user
tokens against.

Each change is one KV transaction fenced by the lease term (only the primary changes users);
afterwards the directory is refreshed, so the change holds on this mgmtd's connections at once
(meta and storage servers see it within their ``routing_refresh_s``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TypeVar

import msgspec

from mgmtd.state import MgmtdState
from mgmtd.store.user_store import Fence, delete_user, load_users, read_user, write_user
from threefs.errors import Code, ThreeFSError
from threefs.kv import Engine, Transaction, run_transaction_async
from threefs.rpc import CachedUserDirectory, Identity, UserKey, UserToken, format_token
from threefs.rpc.users import KEY_BYTES
from threefs.wire import mgmtd as wire

__all__ = [
    "USER_REFRESH_S",
    "kv_user_directory",
    "user_add",
    "user_keys",
    "user_list",
    "user_remove",
    "user_set_token",
    "user_who_am_i",
]

USER_REFRESH_S = 2.0  # how often a mgmtd rereads the users (changes through it apply at once)

T = TypeVar("T")


def user_entries(records: list[wire.UserRecord]) -> dict[str, UserKey]:
    """Directory entries of stored users (client.users.user_entries does the same for UserKeys
    answers; mgmtd keeps its own so that it does not load the client package)."""
    return {
        record.info.name: UserKey(
            record.key,
            Identity(
                name=record.info.name,
                uid=record.info.uid,
                gid=record.info.gid,
                groups=frozenset(record.info.groups),
                admin=record.info.admin,
                impersonate=record.info.impersonate,
            ),
        )
        for record in records
    }


def kv_user_directory(engine: Engine) -> CachedUserDirectory:
    """The users stored in ``engine``, as a directory for this mgmtd's ``RpcServer``."""

    async def fetch() -> dict[str, UserKey]:
        return user_entries(await run_transaction_async(engine, load_users, read_only=True))

    return CachedUserDirectory(fetch, min_interval_s=0.05, what="users from the KV store")


async def _commit(state: MgmtdState, change: Callable[[Transaction, Fence], T]) -> T:
    """Run ``change(txn, fence)`` in a transaction, its writes fenced by this primary's lease
    term (MGMTD_NOT_PRIMARY when not primary; MGMTD_LEASE_LOST, and a step down, when the term
    ended meanwhile). ``change`` raises to refuse; nothing is written then."""
    state.require_primary()
    term = state.lease.term if state.lease is not None else 0
    fence = Fence(state.instance, term, state.now_ms())
    try:
        return await run_transaction_async(state.engine, lambda txn: change(txn, fence))
    except ThreeFSError as exc:
        if exc.code == Code.MGMTD_LEASE_LOST:
            state.step_down(exc.message, term)
        raise


def _new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def _token(record: wire.UserRecord) -> str:
    return format_token(UserToken(record.info.name, record.key))


async def user_add(
    state: MgmtdState, users: CachedUserDirectory, request: wire.UserAddRequest
) -> wire.UserAddResponse:
    """Add the user with a new key; ALREADY_EXISTS (nothing changed) when the name is taken."""
    now_ms = state.now_ms()
    info = wire.UserInfo(
        name=request.name,
        uid=request.uid,
        gid=request.gid,
        groups=sorted(set(request.groups)),
        admin=request.admin,
        impersonate=request.impersonate,
        created_ms=now_ms,
        token_set_ms=now_ms,
    )
    record = wire.UserRecord(info=info, key=_new_key())

    def change(txn: Transaction, fence: Fence) -> None:
        if read_user(txn, request.name) is not None:
            raise ThreeFSError(Code.ALREADY_EXISTS, f"user {request.name!r} already exists")
        write_user(txn, record, fence)

    await _commit(state, change)
    await users.refresh()
    return wire.UserAddResponse(user=info, token=_token(record))


async def user_list(state: MgmtdState) -> wire.UserListResponse:
    state.require_primary()
    records = await run_transaction_async(state.engine, load_users, read_only=True)
    return wire.UserListResponse(users=[record.info for record in records])


def _existing(txn: Transaction, name: str) -> wire.UserRecord:
    record = read_user(txn, name)
    if record is None:
        raise ThreeFSError(Code.NOT_FOUND, f"no user {name!r}")
    return record


async def user_remove(
    state: MgmtdState, users: CachedUserDirectory, request: wire.UserRemoveRequest
) -> wire.UserRemoveResponse:
    """Remove the user; NOT_FOUND (nothing changed) when there is none."""

    def change(txn: Transaction, fence: Fence) -> wire.UserRecord:
        record = _existing(txn, request.name)
        delete_user(txn, request.name, fence)
        return record

    record = await _commit(state, change)
    await users.refresh()
    return wire.UserRemoveResponse(user=record.info)


async def user_set_token(
    state: MgmtdState, users: CachedUserDirectory, request: wire.UserSetTokenRequest
) -> wire.UserSetTokenResponse:
    """Give the user a new key; NOT_FOUND (nothing changed) when there is none."""
    key, now_ms = _new_key(), state.now_ms()

    def change(txn: Transaction, fence: Fence) -> wire.UserRecord:
        old = _existing(txn, request.name)
        record = wire.UserRecord(info=msgspec.structs.replace(old.info, token_set_ms=now_ms), key=key)
        write_user(txn, record, fence)
        return record

    record = await _commit(state, change)
    await users.refresh()
    return wire.UserSetTokenResponse(user=record.info, token=_token(record))


async def user_keys(state: MgmtdState) -> wire.UserKeysResponse:
    state.require_primary()
    return wire.UserKeysResponse(users=await run_transaction_async(state.engine, load_users, read_only=True))


async def user_who_am_i(state: MgmtdState, identity: Identity | None) -> wire.UserWhoAmIResponse:
    """The stored user the connection authenticated as (None on a cluster-secret connection)."""
    if identity is None:
        return wire.UserWhoAmIResponse(user=None)
    record = await run_transaction_async(
        state.engine, lambda txn: read_user(txn, identity.name), read_only=True
    )
    if record is None:
        raise ThreeFSError(Code.NOT_FOUND, f"user {identity.name!r} was removed")
    return wire.UserWhoAmIResponse(user=record.info)
