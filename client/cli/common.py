"""What every `threefs` command shares: the user-facing error and exit codes, the connection
options (mgmtd addresses, cluster secret or user token) and output helpers (aligned tables,
JSON)."""

from __future__ import annotations

import argparse
import enum
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from client.config import ClusterConfig, MgmtdClientConfig, load_cluster_config, read_secret_file
from client.users import read_token_file
from threefs.errors import Code, ThreeFSError
from threefs.rpc import UserToken, parse_address

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "SECRET_ENV",
    "Connection",
    "Parser",
    "UserError",
    "add_connection_options",
    "exit_code_for",
    "format_age",
    "format_bytes",
    "render_json",
    "render_table",
    "resolve_connection",
]

EXIT_OK = 0
EXIT_FAILED = 1  # the operation failed with a ThreeFSError
EXIT_USAGE = 2  # bad arguments or configuration
EXIT_UNREACHABLE = 3  # no mgmtd primary could be reached
EXIT_INTERRUPTED = 130  # Ctrl-C

SECRET_ENV = "THREEFS_CLUSTER_SECRET"
DEFAULT_TIMEOUT_S = 15.0


class UserError(Exception):
    """A failure to report without a traceback: ``main`` prints ``error: [CODE: ]message`` to
    stderr and exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED, code: Code | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.code = code

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}" if self.code is not None else self.message


def exit_code_for(error: ThreeFSError) -> int:
    """The exit status for a ``ThreeFSError`` that ends a command."""
    if error.code == Code.CLIENT_ROUTING_UNAVAILABLE:
        return EXIT_UNREACHABLE
    if error.code == Code.CONFIG_INVALID:
        return EXIT_USAGE
    return EXIT_FAILED


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors raise ``UserError`` (exit 2) instead of exiting,
    so ``main(argv)`` returns a status to its caller."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see '{self.prog} --help')", EXIT_USAGE)


# ----------------------------------------------------------------------------- connection


def add_connection_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Add ``--mgmtd``, ``--cluster-config``, ``--data-dir``, ``--secret-file``, ``--token-file``,
    ``--timeout`` and ``--json``.

    They go on a command group and again on each of its commands, so they may be written before
    or after the command name; on the commands (``suppress=True``) an option left out does not
    overwrite the group's value.
    """

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("connection")
    group.add_argument(
        "--mgmtd",
        action="append",
        metavar="HOST:PORT",
        default=default(None),
        help="a mgmtd address (repeat for several); overrides the cluster config's list",
    )
    group.add_argument(
        "--cluster-config",
        metavar="FILE",
        default=default(None),
        help="TOML file with mgmtd_addresses and cluster_secret_file",
    )
    group.add_argument(
        "--data-dir",
        metavar="DIR",
        default=default(None),
        help="a local cluster started by `threefs up`: use DIR/cluster.toml as --cluster-config",
    )
    group.add_argument(
        "--secret-file",
        metavar="FILE",
        default=default(None),
        help=f"file holding the cluster secret (else the cluster config's, else ${SECRET_ENV})",
    )
    group.add_argument(
        "--token-file",
        metavar="FILE",
        default=default(None),
        help="act as the user whose token FILE holds (mode 0600), not with the cluster secret",
    )
    group.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=default(DEFAULT_TIMEOUT_S),
        help=f"give up after this long, retries included (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print machine-readable JSON"
    )


@dataclass(frozen=True)
class Connection:
    """Where and how a command reaches the cluster: ``secret`` is the credential, the cluster
    secret or a user token."""

    addresses: list[str]
    secret: bytes | UserToken
    config: MgmtdClientConfig


def resolve_connection(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Connection:
    """The connection from the options: ``--mgmtd`` else the cluster config's addresses (the
    config is ``--cluster-config`` or ``--data-dir``'s ``cluster.toml``); the credential from
    ``--token-file`` or ``--secret-file`` (not both), else the cluster config's ``token_file``,
    else its ``cluster_secret_file``, else ``$THREEFS_CLUSTER_SECRET`` (as in mgmtd, a file
    named in a config wins over the variable). Raises ``UserError`` (exit 2) when something is
    missing or wrong, a token file included (unreadable, or readable by others)."""
    environ = os.environ if environ is None else environ
    cluster = ClusterConfig()
    data_dir = getattr(args, "data_dir", None)
    token_file = getattr(args, "token_file", None)
    if args.cluster_config and data_dir:
        raise UserError("give --cluster-config or --data-dir, not both", EXIT_USAGE)
    if token_file and args.secret_file:
        raise UserError("give --token-file or --secret-file, not both", EXIT_USAGE)
    try:
        if args.cluster_config or data_dir:
            path = args.cluster_config or os.path.join(os.path.expanduser(data_dir), "cluster.toml")
            cluster = load_cluster_config(path)
        addresses = list(args.mgmtd or cluster.mgmtd_addresses)
        for address in addresses:
            parse_address(address)
        secret: bytes | UserToken
        if token_file:
            secret = read_token_file(token_file)
        elif args.secret_file:
            secret = read_secret_file(args.secret_file)
        elif cluster.token_file:
            secret = read_token_file(cluster.token_file)
        elif cluster.cluster_secret_file:
            secret = read_secret_file(cluster.cluster_secret_file)
        else:
            secret = environ.get(SECRET_ENV, "").strip().encode()
    except ThreeFSError as exc:
        raise UserError(exc.message, EXIT_USAGE, exc.code) from None
    if not addresses:
        raise UserError("no mgmtd address: give --mgmtd HOST:PORT or --cluster-config FILE", EXIT_USAGE)
    if not secret:
        raise UserError(
            f"no cluster secret: give --secret-file FILE (or a user's --token-file FILE), name "
            f"cluster_secret_file (or token_file) in the cluster config, or set ${SECRET_ENV}",
            EXIT_USAGE,
        )
    if not (args.timeout > 0):
        raise UserError(f"--timeout must be > 0, not {args.timeout:g}", EXIT_USAGE)
    config = msgspec.structs.replace(
        cluster.mgmtd_client,
        request_timeout_s=args.timeout,
        attempt_timeout_s=min(cluster.mgmtd_client.attempt_timeout_s, args.timeout),
    )
    return Connection(addresses, secret, config)


# ----------------------------------------------------------------------------- output


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows under headers, each column as wide as its widest cell, two spaces apart."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    lines = [headers, *cells]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def to_jsonable(value: Any) -> Any:
    """Plain data for JSON: structs become objects keyed by field name (array-like ones too),
    enums their names, dict keys strings."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, msgspec.Struct):
        return {name: to_jsonable(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    return value


def render_json(value: Any) -> str:
    """``value`` as indented JSON (see ``to_jsonable``)."""
    return msgspec.json.format(msgspec.json.encode(to_jsonable(value)), indent=2).decode()


def format_bytes(count: int) -> str:
    """``1536`` -> ``"1.5 KiB"``; 0 stays ``"0"``."""
    if count < 1024:
        return str(count)
    size = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        size /= 1024
        if size < 1024 or unit == "PiB":
            break
    return f"{size:.1f} {unit}"


def format_age(timestamp_ms: int, now_s: float | None = None) -> str:
    """How long ago a wall-clock time in ms was, e.g. ``"3.2s ago"``; ``"never"`` for 0."""
    if timestamp_ms == 0:
        return "never"
    age = (time.time() if now_s is None else now_s) - timestamp_ms / 1000
    if age < 0:
        return "in the future"
    if age < 120:
        return f"{age:.1f}s ago"
    if age < 7200:
        return f"{age / 60:.0f}m ago"
    return f"{age / 3600:.0f}h ago"
