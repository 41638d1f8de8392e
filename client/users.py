"""Users and tokens on the client side (docs/security.md): token files, mgmtd's user methods,
and the user directory meta and storage servers check tokens against.

- ``read_token_file(path)`` / ``write_token_file(path, token)``: a token file holds
  ``<name>:<key hex>`` and must be private to its owner (like an ssh key): a file that group or
  others may read or write is refused before anything is sent.
- ``add_user``, ``list_users``, ``remove_user``, ``set_user_token``, ``who_am_i``: the mgmtd
  user methods (admin ones need an admin token or the cluster secret).
- ``mgmtd_user_directory(mgmtd)``: a ``CachedUserDirectory`` fed by mgmtd's UserKeys (callable
  with the cluster secret only), for ``RpcServer(users=...)``.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from client.mgmtd import MgmtdClient
from threefs.errors import Code, ThreeFSError
from threefs.rpc import CachedUserDirectory, Identity, UserKey, UserToken, format_token, parse_token
from threefs.wire import mgmtd as wire
from threefs.wire.meta import Caller

__all__ = [
    "add_user",
    "caller_of",
    "identity_of",
    "list_users",
    "mgmtd_user_directory",
    "read_token_file",
    "remove_user",
    "set_user_token",
    "user_entries",
    "who_am_i",
    "write_token_file",
]

_PRIVATE_MODE = 0o600


# ----------------------------------------------------------------------------- token files


def read_token_file(path: str | os.PathLike[str]) -> UserToken:
    """The token in ``path``.

    Raises ``ThreeFSError(CONFIG_INVALID)`` naming the file when it cannot be read, is not a
    regular file, may be read or written by group or others (its mode is named: ``chmod 600``
    it), or does not hold a token."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ThreeFSError(Code.CONFIG_INVALID, f"token file {path} is not a regular file")
            mode = stat.S_IMODE(info.st_mode)
            if mode & 0o077:
                raise ThreeFSError(
                    Code.CONFIG_INVALID,
                    f"token file {path} has mode {mode:04o}: group or others may read or write it; "
                    f"refusing to use it (run: chmod 600 {path})",
                )
            text = handle.read(4096).decode("ascii", errors="replace")
    except OSError as exc:
        raise ThreeFSError(Code.CONFIG_INVALID, f"cannot read token file {path}: {exc.strerror}") from None
    try:
        return parse_token(text)
    except ThreeFSError as exc:
        raise ThreeFSError(Code.CONFIG_INVALID, f"token file {path}: {exc.message}") from None


def write_token_file(path: str | os.PathLike[str], token: UserToken) -> Path:
    """Write ``token`` to ``path`` with mode 0600, replacing the file atomically (a new name in
    the same directory, then a rename), so the token is never readable by others, not even for
    a moment. Returns the path. Raises ``ThreeFSError(IO_ERROR)`` naming the file."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)  # mode 0600
        try:
            with os.fdopen(fd, "w") as handle:
                os.fchmod(handle.fileno(), _PRIVATE_MODE)
                handle.write(format_token(token) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ThreeFSError(Code.IO_ERROR, f"cannot write token file {path}: {exc.strerror}") from None
    return path


# ----------------------------------------------------------------------------- identities


def identity_of(info: wire.UserInfo) -> Identity:
    return Identity(
        name=info.name,
        uid=info.uid,
        gid=info.gid,
        groups=frozenset(info.groups),
        admin=info.admin,
        impersonate=info.impersonate,
    )


def user_entries(records: Iterable[wire.UserRecord]) -> dict[str, UserKey]:
    """Directory entries (name -> key and identity) of stored or fetched user records."""
    return {record.info.name: UserKey(record.key, identity_of(record.info)) for record in records}


def caller_of(info: wire.UserInfo, *, admin: bool = False) -> Caller:
    """The ``Caller`` that acts as user ``info`` at meta (``admin``: with the admin flag, which
    meta accepts only from an admin user)."""
    return Caller(uid=info.uid, gid=info.gid, groups=sorted(set(info.groups)), admin=admin)


def mgmtd_user_directory(mgmtd: MgmtdClient, *, min_interval_s: float = 0.25) -> CachedUserDirectory:
    """A directory of mgmtd's users, refreshed through ``mgmtd`` (whose RPC client must hold
    the cluster secret: UserKeys is for cluster members only)."""

    async def fetch() -> dict[str, UserKey]:
        response = await mgmtd.call(wire.USER_KEYS, wire.UserKeysRequest())
        return user_entries(response.users)

    return CachedUserDirectory(fetch, min_interval_s=min_interval_s, what="users from mgmtd")


# ----------------------------------------------------------------------------- mgmtd's user methods


def _token(text: str) -> UserToken:
    try:
        return parse_token(text)
    except ThreeFSError as exc:
        raise ThreeFSError(Code.INTERNAL, f"mgmtd answered a malformed token: {exc.message}") from None


async def add_user(
    mgmtd: MgmtdClient,
    name: str,
    *,
    uid: int,
    gid: int,
    groups: Sequence[int] = (),
    admin: bool = False,
    impersonate: bool = False,
) -> tuple[wire.UserInfo, UserToken]:
    """Add a user; returns it and its new token (ALREADY_EXISTS when the name is taken)."""
    request = wire.UserAddRequest(
        name=name, uid=uid, gid=gid, groups=list(groups), admin=admin, impersonate=impersonate
    )
    response = await mgmtd.call(wire.USER_ADD, request)
    return response.user, _token(response.token)


async def list_users(mgmtd: MgmtdClient) -> list[wire.UserInfo]:
    """Every user, by name (keys are never listed)."""
    return (await mgmtd.call(wire.USER_LIST, wire.UserListRequest())).users


async def remove_user(mgmtd: MgmtdClient, name: str) -> wire.UserInfo:
    """Remove a user (NOT_FOUND when there is none); returns what it was."""
    return (await mgmtd.call(wire.USER_REMOVE, wire.UserRemoveRequest(name=name))).user


async def set_user_token(mgmtd: MgmtdClient, name: str) -> tuple[wire.UserInfo, UserToken]:
    """Give a user a new key; returns it and the new token (the old one stops working)."""
    response = await mgmtd.call(wire.USER_SET_TOKEN, wire.UserSetTokenRequest(name=name))
    return response.user, _token(response.token)


async def who_am_i(mgmtd: MgmtdClient) -> wire.UserInfo | None:
    """The user ``mgmtd``'s connection authenticated as (None with the cluster secret)."""
    return (await mgmtd.call(wire.USER_WHO_AM_I, wire.UserWhoAmIRequest())).user
