"""`threefs up` / `threefs down` / `threefs status`: a whole cluster on this machine under a data
directory (default ``$THREEFS_DATA_DIR``, else ``~/.threefs``; see docs/operations.md). The work
is done by ``threefs.local``; this module parses options, prints progress on stderr and turns
``LaunchError`` into the CLI's exit codes."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import trio

from client.cli.common import EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, UserError, render_json, render_table
from client.config import load_cluster_config, read_secret_file
from threefs.errors import ThreeFSError
from threefs.local import ClusterDir, LaunchError, UpOptions, cluster_status, default_data_dir, down, up
from threefs.local.launcher import running_pids
from threefs.local.layout import DATA_DIR_ENV

__all__ = ["parse_size", "register"]

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """``"1M"``, ``"512KiB"``, ``"65536"`` -> bytes (an argparse type)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmg]?)(i?b)?\s*", text.lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: expected e.g. 1M, 512K or 65536")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def _progress(message: str) -> None:
    print(f"threefs: {message}", file=sys.stderr, flush=True)


def _user_error(exc: LaunchError) -> UserError:
    return UserError(exc.message, EXIT_USAGE if exc.usage else EXIT_FAILED)


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir) if args.data_dir else default_data_dir()


def run_up(args: argparse.Namespace) -> int:
    options = UpOptions(
        storage_nodes=args.storage_nodes,
        targets_per_node=args.targets_per_node,
        replicas=args.replicas,
        chunk_size=args.chunk_size,
        kv=args.kv,
        mount=Path(args.mount) if args.mount else None,
        timeout_s=args.timeout,
    )
    try:
        cluster = up(_data_dir(args), options, _progress)
    except LaunchError as exc:
        raise _user_error(exc) from None
    print(f"cluster config: {cluster.cluster_config}")
    if args.mount:
        print(f"mounted at:     {Path(args.mount).expanduser().absolute()}")
    print(f"status:         threefs status --data-dir {cluster.path}")
    print(f"stop:           threefs down --data-dir {cluster.path}")
    return 0


def run_down(args: argparse.Namespace) -> int:
    try:
        stopped = down(_data_dir(args), _progress, timeout_s=args.timeout)
    except LaunchError as exc:
        raise _user_error(exc) from None
    print(f"stopped {len(stopped)} process(es)" if stopped else "nothing was running")
    return 0


def _status_sources(args: argparse.Namespace) -> tuple[list[str], bytes, dict[int, int | None] | None]:
    """mgmtd addresses, secret and (for a data dir) the local pids."""
    if args.cluster_config:
        try:
            config = load_cluster_config(args.cluster_config)
            secret = read_secret_file(config.cluster_secret_file) if config.cluster_secret_file else b""
        except ThreeFSError as exc:
            raise UserError(exc.message, EXIT_USAGE) from None
        if not config.mgmtd_addresses or not secret:
            raise UserError(
                f"{args.cluster_config}: needs mgmtd_addresses and cluster_secret_file", EXIT_USAGE
            )
        return list(config.mgmtd_addresses), secret, None
    cluster = ClusterDir(_data_dir(args))
    try:
        state = cluster.load_state()
    except ThreeFSError as exc:
        raise UserError(exc.message, EXIT_USAGE) from None
    if state is None:
        raise UserError(
            f"{cluster.path} holds no local cluster: start one with threefs up --data-dir {cluster.path}",
            EXIT_USAGE,
        )
    secret = read_secret_file(cluster.secret_file)
    return [cluster.mgmtd_address(state)], secret, running_pids(cluster, state)


def _render(status: dict[str, Any]) -> str:
    nodes = [
        [n["node_id"], n["role"], n["address"] or "-", n["pid"] or "-", n["state"]] for n in status["nodes"]
    ]
    text = render_table(["NODE_ID", "ROLE", "ADDRESS", "PID", "STATE"], nodes)
    rows = [
        [
            c["chain_id"],
            c["chain_version"],
            " ".join(
                f"{t['target_id']}@{t['node_id']}:{t['public_state']}/{t['local_state']}"
                for t in c["targets"]
            ),
        ]
        for c in status["chains"]
    ]
    if rows:
        text += "\n\n" + render_table(
            ["CHAIN_ID", "VERSION", "TARGETS (head first: id@node:public/local)"], rows
        )
    return text


def run_status(args: argparse.Namespace) -> int:
    addresses, secret, pids = _status_sources(args)
    status, reachable = trio.run(cluster_status, addresses, secret, pids)
    print(render_json(status) if args.json else _render(status))
    if not reachable:
        print(f"error: no primary mgmtd answered at {', '.join(addresses)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    return 0


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help=f"the local cluster's directory (default ${DATA_DIR_ENV}, else ~/.threefs)",
    )


def register(subparsers: Any) -> None:
    """Add ``up``, ``down`` and ``status`` to the top-level parser's ``subparsers``."""
    parser = subparsers.add_parser(
        "up",
        help="start a local cluster (mgmtd, meta, storage nodes) in the background",
        description="Start mgmtd, a meta server and N storage nodes on this machine under DIR, wait "
        "until every chain is SERVING and write DIR/cluster.toml for clients. Running it again "
        "restarts whatever is not running. Options other than --mount apply when DIR is new.",
    )
    _add_data_dir(parser)
    parser.add_argument("--storage-nodes", type=_positive, metavar="N", help="storage processes (default 3)")
    parser.add_argument("--targets-per-node", type=_positive, metavar="T", help="targets each (default 2)")
    parser.add_argument("--replicas", type=_positive, metavar="R", help="targets per chain (default 3)")
    parser.add_argument(
        "--chunk-size", type=parse_size, metavar="SIZE", help="the root layout's chunk size (default 1M)"
    )
    parser.add_argument(
        "--kv", metavar="URL", help="metadata store: sqlite (default), postgresql://..., fdb:CLUSTERFILE"
    )
    parser.add_argument("--mount", metavar="MOUNTPOINT", help="also mount the file system there (FUSE)")
    parser.add_argument(
        "--timeout", type=float, default=120.0, metavar="SECONDS", help="give up after (default 120)"
    )
    parser.set_defaults(run=run_up)

    parser = subparsers.add_parser(
        "down",
        help="stop the local cluster (unmounting first)",
        description="Unmount DIR's mount, then SIGTERM every process threefs up started (SIGKILL "
        "after --timeout). The data stays; threefs up starts the same cluster again.",
    )
    _add_data_dir(parser)
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="before SIGKILL")
    parser.set_defaults(run=run_down)

    parser = subparsers.add_parser(
        "status",
        help="nodes, chains and targets of a cluster",
        description="Nodes (id, role, address, pid, state) and chains with their targets' states.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data-dir", metavar="DIR", help="a local cluster (default ~/.threefs)")
    source.add_argument("--cluster-config", metavar="FILE", help="any cluster, from its client config")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(run=run_status)
