"""User tokens on the RPC layer: the token a client holds, the identity a server gives its
connection, and the directory a server looks users up in (docs/security.md).

- ``UserToken(name, key)``: what a client proves; written ``<name>:<key hex>`` (``format_token``,
  ``parse_token``). The key is ``KEY_BYTES`` random bytes made by mgmtd.
- ``Identity``: who a user connection acts as (uid, gid, groups, admin, impersonate), handed to
  handlers as ``CallContext.identity`` (None on cluster-secret connections).
- ``UserDirectory``: what ``RpcServer`` asks during a handshake and before each request of a
  user connection. ``CachedUserDirectory`` implements it over a ``fetch`` function (mgmtd reads
  its KV store; meta and storage ask mgmtd's UserKeys method).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import trio

from threefs.errors import Code, ThreeFSError
from threefs.wire.envelope import MAX_USER_NAME_BYTES, USER_NAME_PATTERN

__all__ = [
    "KEY_BYTES",
    "CachedUserDirectory",
    "Identity",
    "UserDirectory",
    "UserKey",
    "UserToken",
    "check_user_name",
    "format_token",
    "parse_token",
]

log = logging.getLogger("threefs.rpc.users")

KEY_BYTES = 32
_USER_NAME = re.compile(USER_NAME_PATTERN)


def check_user_name(name: str) -> str:
    """``name`` if it is a valid user name, else ``ThreeFSError(INVALID_ARG)`` saying why."""
    if not isinstance(name, str) or not _USER_NAME.match(name):
        raise ThreeFSError(
            Code.INVALID_ARG,
            f"bad user name {name!r}: 1-{MAX_USER_NAME_BYTES} letters, digits, '_', '.' or '-', "
            "not starting with '.' or '-'",
        )
    return name


@dataclass(frozen=True)
class UserToken:
    """A user's credential: the name and the key (never logged: ``repr`` hides it)."""

    name: str
    key: bytes

    def __post_init__(self) -> None:
        check_user_name(self.name)
        if not isinstance(self.key, bytes) or len(self.key) != KEY_BYTES:
            raise ThreeFSError(Code.INVALID_ARG, f"a token key is {KEY_BYTES} bytes")

    def __repr__(self) -> str:
        return f"UserToken(name={self.name!r}, key=<hidden>)"


def format_token(token: UserToken) -> str:
    """The text form a token file holds: ``<name>:<key as lowercase hex>``."""
    return f"{token.name}:{token.key.hex()}"


def parse_token(text: str) -> UserToken:
    """The ``UserToken`` written in ``text`` (surrounding whitespace ignored).

    Raises ``ThreeFSError(INVALID_ARG)`` naming what is wrong (never echoing the key)."""
    name, sep, key_hex = text.strip().rpartition(":")
    if not sep or not name:
        raise ThreeFSError(Code.INVALID_ARG, "a token has the form NAME:KEY (64 hex digits)")
    try:
        key = bytes.fromhex(key_hex)
    except ValueError:
        raise ThreeFSError(Code.INVALID_ARG, f"the key of user {name!r}'s token is not hex") from None
    if len(key) != KEY_BYTES:
        raise ThreeFSError(
            Code.INVALID_ARG, f"the key of user {name!r}'s token has {len(key)} bytes, not {KEY_BYTES}"
        )
    return UserToken(check_user_name(name), key)


@dataclass(frozen=True)
class Identity:
    """Who a user connection acts as. ``groups``: supplementary gids. ``admin``: may call admin
    methods and act as any caller (root included). ``impersonate``: may act for any uid and gid
    (a FUSE daemon serving local users), but is admin only with ``admin``."""

    name: str
    uid: int
    gid: int
    groups: frozenset[int] = frozenset()
    admin: bool = False
    impersonate: bool = False


@dataclass(frozen=True)
class UserKey:
    """A directory entry: the user's current key and identity."""

    key: bytes
    identity: Identity


class UserDirectory(Protocol):
    """Where a server finds users.

    ``get(name)`` answers from memory at once (it is called before every request of a user
    connection: a user removed, or given a new key, is refused from then on). ``refresh()``
    brings the entries up to date: it returns once a fetch that began after the call has ended
    (successfully or not: failures are logged, the old entries stay)."""

    def get(self, name: str) -> UserKey | None: ...

    async def refresh(self) -> None: ...


Fetch = Callable[[], Awaitable[Mapping[str, UserKey]]]


class CachedUserDirectory:
    """A ``UserDirectory`` holding what ``fetch()`` last returned.

    Fetches run one at a time, at least ``min_interval_s`` apart, so a stream of handshakes
    with unknown names costs the source at most one fetch per interval; callers of ``refresh``
    wait for the next fetch instead of being turned away (a token made a moment ago works on
    the first try). ``run_forever(interval_s)`` refreshes periodically. ``what`` names the
    source in log lines.
    """

    def __init__(self, fetch: Fetch, *, min_interval_s: float = 0.25, what: str = "users") -> None:
        self._fetch = fetch
        self._min_interval_s = min_interval_s
        self._what = what
        self._entries: dict[str, UserKey] = {}
        self._lock = trio.Lock()
        self._started = 0  # fetches started so far
        self._last_start = -math.inf
        self._failing = False  # the last fetch failed (repeats are logged at DEBUG)
        self.loaded = False  # a fetch has succeeded at least once

    def get(self, name: str) -> UserKey | None:
        return self._entries.get(name)

    def names(self) -> list[str]:
        return sorted(self._entries)

    async def refresh(self) -> None:
        ticket = self._started
        async with self._lock:
            if self._started > ticket:
                return  # a fetch began after our call and has ended (fetches hold the lock)
            await trio.sleep_until(self._last_start + self._min_interval_s)
            self._started += 1
            self._last_start = trio.current_time()
            try:
                entries = dict(await self._fetch())
            except ThreeFSError as exc:
                level = logging.DEBUG if self._failing else logging.WARNING
                log.log(
                    level, "cannot refresh %s (keeping %d known): %s", self._what, len(self._entries), exc
                )
                self._failing = True
                return
            if self._failing:
                log.info("refreshed %s again (%d users)", self._what, len(entries))
            self._entries, self._failing = entries, False
            self.loaded = True

    async def run_forever(self, interval_s: float) -> None:
        """Refresh now and then every ``interval_s`` until cancelled."""
        if not interval_s > 0:
            raise ThreeFSError(Code.INVALID_ARG, f"refresh interval must be > 0, not {interval_s}")
        while True:
            await self.refresh()
            await trio.sleep(interval_s)
