"""`threefs admin user-*`: users and their tokens, kept by mgmtd (docs/security.md).

- ``user-add NAME --uid N --gid N [--groups 1,2] [--admin] [--impersonate] [--save-token FILE]``
- ``user-list``
- ``user-remove NAME``
- ``user-set-token NAME [--save-token FILE]``

A new token is written to ``--save-token FILE`` with mode 0600 (the file is replaced
atomically), or printed once when no file is given. (``--token-file`` is taken: it names the
token the command itself authenticates with, as on every ``threefs admin`` command.) The
commands need an admin token or the cluster secret. Commands have the ``admin`` signature
``(mgmtd, args) -> (data, text)``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from client.cli.common import format_age, render_table
from client.mgmtd import MgmtdClient
from client.users import add_user, list_users, remove_user, set_user_token, write_token_file
from threefs.rpc import UserToken, format_token
from threefs.wire import mgmtd as wire

__all__ = ["gid_list", "register", "uid"]


def gid_list(text: str) -> list[int]:
    """``"10,20"`` -> ``[10, 20]`` (an argparse type: ids from 0 to 2**32 - 1)."""
    try:
        ids = [int(part) for part in filter(None, text.split(","))]
        if any(not 0 <= gid < 2**32 for gid in ids):
            raise ValueError(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad group list {text!r}: expected e.g. 10,20") from None
    return ids


def uid(text: str) -> int:
    """A uid or gid (an argparse type: 0 to 2**32 - 1)."""
    try:
        value = int(text)
        if not 0 <= value < 2**32:
            raise ValueError(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad id {text!r}: expected 0 to 4294967295") from None
    return value


def _flags(user: wire.UserInfo) -> str:
    return (
        ",".join(flag for flag, on in (("admin", user.admin), ("impersonate", user.impersonate)) if on) or "-"
    )


def _describe(user: wire.UserInfo) -> str:
    groups = ",".join(map(str, user.groups)) or "-"
    return f"user {user.name} (uid {user.uid}, gid {user.gid}, groups {groups}, flags {_flags(user)})"


def _deliver(user: wire.UserInfo, token: UserToken, path: str | None, verb: str) -> tuple[Any, str]:
    """Save the token to ``path`` (0600) or show it once."""
    if path:
        written = write_token_file(path, token)
        return (
            {"user": user, "token_file": str(written)},
            f"{verb} {_describe(user)}; token written to {written} (mode 0600)",
        )
    text = format_token(token)
    return (
        {"user": user, "token": text},
        f"{verb} {_describe(user)}\ntoken (shown once; store it in a file with mode 0600): {text}",
    )


async def user_add(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    user, token = await add_user(
        mgmtd,
        args.name,
        uid=args.uid,
        gid=args.gid,
        groups=args.groups or [],
        admin=args.admin,
        impersonate=args.impersonate,
    )
    return _deliver(user, token, args.save_token, "added")


async def user_set_token(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    user, token = await set_user_token(mgmtd, args.name)
    return _deliver(user, token, args.save_token, "new token for")


async def user_list(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    users = sorted(await list_users(mgmtd), key=lambda u: u.name)
    headers = ["NAME", "UID", "GID", "GROUPS", "FLAGS", "CREATED", "TOKEN_SET"]
    rows = [
        [
            u.name,
            u.uid,
            u.gid,
            ",".join(map(str, u.groups)) or "-",
            _flags(u),
            format_age(u.created_ms),
            format_age(u.token_set_ms),
        ]
        for u in users
    ]
    return {"users": users}, render_table(headers, rows)


async def user_remove(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    user = await remove_user(mgmtd, args.name)
    return {"user": user}, f"removed {_describe(user)}; its token no longer works"


def register(add: Callable[[str, Any, str], argparse.ArgumentParser]) -> None:
    """Add the user commands through ``admin.register``'s ``add(name, command, help)``."""
    save_help = "write the new token to FILE (mode 0600) instead of printing it"

    parser = add("user-add", user_add, "add a user and make its token")
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("--uid", type=uid, required=True, metavar="N", help="the uid the user acts as")
    parser.add_argument("--gid", type=uid, required=True, metavar="N", help="its primary gid")
    parser.add_argument("--groups", type=gid_list, metavar="GIDS", help="supplementary gids, e.g. 10,20")
    parser.add_argument("--admin", action="store_true", help="may call admin methods and act as anyone")
    parser.add_argument(
        "--impersonate", action="store_true", help="may act for any uid/gid (a FUSE daemon for local users)"
    )
    parser.add_argument("--save-token", metavar="FILE", help=save_help)

    add("user-list", user_list, "list users (never their keys)")

    parser = add("user-remove", user_remove, "remove a user; its token stops working")
    parser.add_argument("name", metavar="NAME")

    parser = add("user-set-token", user_set_token, "give a user a new token; the old one stops working")
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("--save-token", metavar="FILE", help=save_help)
