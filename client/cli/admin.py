"""`threefs admin ...`: cluster administration through the primary mgmtd (list nodes, targets,
chains and tables; create targets, chains and tables; take targets and nodes out of service).
The commands that also talk to storage nodes live in ``client.cli.storage_admin``, those on the
namespace (through a meta server) in ``client.cli.meta_admin``.

Each command is an async function ``(mgmtd, args) -> (data, text)``: ``data`` is what ``--json``
prints, ``text`` the human-readable form.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import trio

from client.cli import meta_admin, status, storage_admin, users
from client.cli.common import (
    EXIT_USAGE,
    Connection,
    Parser,
    UserError,
    add_connection_options,
    format_age,
    format_bytes,
    render_json,
    render_table,
    resolve_connection,
)
from client.mgmtd import MgmtdClient
from threefs.config import Section, parse_config
from threefs.wire import mgmtd as wire

Command = Callable[[MgmtdClient, argparse.Namespace], Awaitable[tuple[Any, str]]]
S = TypeVar("S", bound=Section)


# ----------------------------------------------------------------------------- listing


async def list_nodes(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    nodes = sorted(await mgmtd.list_nodes(), key=lambda n: n.node_id)
    headers = ["NODE_ID", "TYPE", "STATUS", "HOSTNAME", "ADDRESSES", "VERSION", "LAST_HEARTBEAT"]
    rows = [
        [
            n.node_id,
            n.node_type.name,
            n.status.name,
            n.hostname or "-",
            ",".join(n.addresses) or "-",
            n.version or "-",
            format_age(n.last_heartbeat_ms),
        ]
        for n in nodes
    ]
    return {"nodes": nodes}, render_table(headers, rows)


async def list_targets(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    targets = sorted(await mgmtd.list_targets(), key=lambda t: t.target_id)
    headers = [
        "TARGET_ID",
        "NODE_ID",
        "CHAIN_ID",
        "PUBLIC_STATE",
        "LOCAL_STATE",
        "CHAIN_VER",
        "USED",
        "CAPACITY",
    ]
    rows = [
        [
            t.target_id,
            t.node_id,
            t.chain_id or "-",
            t.public_state.name,
            t.local_state.name,
            t.chain_version_seen,
            format_bytes(t.used_bytes),
            format_bytes(t.capacity_bytes),
        ]
        for t in targets
    ]
    return {"targets": targets}, render_table(headers, rows)


def _chain_row(chain: wire.ChainInfo) -> list[object]:
    replicas = " ".join(f"{r.target_id}:{r.public_state.name}" for r in chain.targets) or "-"
    preferred = ",".join(str(t) for t in chain.preferred_order) or "-"
    return [chain.chain_id, chain.chain_version, replicas, preferred]


_CHAIN_HEADERS = ["CHAIN_ID", "VERSION", "TARGETS (head first)", "PREFERRED_ORDER"]


async def list_chains(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    chains = sorted(await mgmtd.list_chains(), key=lambda c: c.chain_id)
    return {"chains": chains}, render_table(_CHAIN_HEADERS, [_chain_row(c) for c in chains])


def _abbreviate(ids: list[int], shown: int = 8) -> str:
    text = ",".join(str(i) for i in ids[:shown])
    return f"{text},...(+{len(ids) - shown})" if len(ids) > shown else text or "-"


async def list_chain_tables(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    tables = sorted(await mgmtd.list_chain_tables(), key=lambda t: (t.table_id, t.version))
    headers = ["TABLE_ID", "VERSION", "CHAINS", "CHAIN_IDS", "DESCRIPTION"]
    rows = [
        [t.table_id, t.version, len(t.chain_ids), _abbreviate(t.chain_ids), t.description or "-"]
        for t in tables
    ]
    return {"tables": tables}, render_table(headers, rows)


async def list_client_sessions(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    sessions = sorted(await mgmtd.list_client_sessions(), key=lambda s: s.node_id)
    headers = ["NODE_ID", "HOSTNAME", "ADDRESSES", "VERSION", "STATUS", "LAST_HEARTBEAT"]
    rows = [
        [
            s.node_id,
            s.hostname or "-",
            ",".join(s.addresses) or "-",
            s.version or "-",
            s.status.name,
            format_age(s.last_heartbeat_ms),
        ]
        for s in sessions
    ]
    return {"sessions": sessions}, render_table(headers, rows)


# ----------------------------------------------------------------------------- changes


class TargetEntry(Section):
    """One target in a ``create-targets --file``: ``[[targets]]`` tables (TOML) or objects (JSON)."""

    target_id: wire.PositiveU32
    node_id: wire.PositiveU32
    capacity_bytes: wire.U64 = 0


class TargetsFile(Section):
    targets: list[TargetEntry]


class ChainEntry(Section):
    """One chain in a ``create-chains --file``: its id and target ids, head first."""

    chain_id: wire.PositiveU32
    target_ids: list[wire.PositiveU32]


class ChainsFile(Section):
    chains: list[ChainEntry]


def _load_input(path: str, cls: type[S]) -> S:
    """Read ``path`` (JSON if it ends in .json, else TOML) into ``cls``; UserError (exit 2) if bad."""
    try:
        text = Path(path).read_text()
        data = json.loads(text) if path.endswith(".json") else tomllib.loads(text)
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}", EXIT_USAGE) from None
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise UserError(
            f"{path}: not valid {'JSON' if path.endswith('.json') else 'TOML'}: {exc}", EXIT_USAGE
        ) from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected an object at the top level", EXIT_USAGE)
    return parse_config(cls, data, path)


def id_list(text: str) -> list[int]:
    """``"1,2,5-7"`` -> ``[1, 2, 5, 6, 7]`` (an argparse type: bad input is a usage error)."""
    ids: list[int] = []
    try:
        for part in filter(None, text.split(",")):
            first, _, last = part.partition("-")
            low, high = int(first), int(last or first)
            if low < 1 or high < low:
                raise ValueError(part)
            ids.extend(range(low, high + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad id list {text!r}: expected e.g. 1,2,5-8 (ids >= 1)") from None
    return ids


def _flatten(lists: list[list[int]]) -> list[int]:
    return [item for sub in lists for item in sub]


async def create_targets(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    if args.file:
        entries = _load_input(args.file, TargetsFile).targets
        targets = [
            wire.TargetInfo(target_id=e.target_id, node_id=e.node_id, capacity_bytes=e.capacity_bytes)
            for e in entries
        ]
    elif args.node_id and args.target_id:
        targets = [
            wire.TargetInfo(target_id=t, node_id=args.node_id, capacity_bytes=args.capacity_bytes)
            for t in _flatten(args.target_id)
        ]
    else:
        raise UserError("give --file FILE, or --node-id N and --target-id IDS", EXIT_USAGE)
    version = await mgmtd.create_targets(targets)
    ids = [t.target_id for t in targets]
    return (
        {"target_ids": ids, "routing_version": version},
        f"created {len(ids)} target(s) {_abbreviate(ids)}; routing version {version}",
    )


def chain_spec(text: str) -> wire.ChainSpec:
    """``"7:101,201,301"`` -> chain 7 over targets 101, 201, 301 (head first)."""
    chain_id, sep, targets = text.partition(":")
    try:
        if not sep or int(chain_id) < 1:
            raise ValueError(text)
        return wire.ChainSpec(chain_id=int(chain_id), target_ids=id_list(targets))
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"bad chain {text!r}: expected CHAIN_ID:TARGET,TARGET,...") from None


async def create_chains(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    if args.file:
        chains = [
            wire.ChainSpec(chain_id=c.chain_id, target_ids=c.target_ids)
            for c in _load_input(args.file, ChainsFile).chains
        ]
    elif args.chain:
        chains = args.chain
    else:
        raise UserError("give --file FILE or --chain CHAIN_ID:TARGET,TARGET,...", EXIT_USAGE)
    version = await mgmtd.create_chains(chains)
    ids = [c.chain_id for c in chains]
    return (
        {"chain_ids": ids, "routing_version": version},
        f"created {len(ids)} chain(s) {_abbreviate(ids)}; routing version {version}",
    )


async def create_chain_table(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    chain_ids = _flatten(args.chain_ids)
    response = await mgmtd.create_chain_table(args.table_id, chain_ids, args.description)
    return (
        {"table_id": response.table_id, "version": response.version, "chain_ids": chain_ids},
        f"created chain table {response.table_id} version {response.version} ({len(chain_ids)} chains)",
    )


async def generate_chain_table(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    response = await mgmtd.generate_chain_table(
        args.table_id,
        args.replication,
        node_ids=_flatten(args.node_ids or []),
        first_chain_id=args.first_chain_id,
        description=args.description,
    )
    ids = response.chain_ids
    return (
        {"response": response},
        f"created chains {_abbreviate(ids)} and chain table {response.table_id} version "
        f"{response.version} ({len(ids)} chains of {args.replication}); node pairs share "
        f"{response.min_pair_chains}..{response.max_pair_chains} chains",
    )


async def set_node_enabled(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    node = await mgmtd.set_node_enabled(args.node_id, args.enabled)
    return {"node": node}, f"node {node.node_id} is now {node.status.name}"


async def offline_target(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    target = await mgmtd.offline_target(args.target_id)
    return {"target": target}, f"target {target.target_id} is now {target.public_state.name}"


async def remove_target(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    """Forget the target at mgmtd; with ``--purge``, first delete its chunks on its node."""
    purged = (
        await storage_admin.purge_target(mgmtd, args.target_id, args.node_address) if args.purge else None
    )
    version = await mgmtd.remove_target(args.target_id)
    text = f"removed target {args.target_id}; routing version {version}"
    if purged is not None:
        text += f"; its node deleted {purged} chunk(s)"
    return {"target_id": args.target_id, "routing_version": version, "purged_chunks": purged}, text


def _chain_result(chain: wire.ChainInfo) -> tuple[Any, str]:
    return {"chain": chain}, render_table(_CHAIN_HEADERS, [_chain_row(chain)])


async def update_chain(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    chain = await mgmtd.update_chain(args.chain_id, args.target_id, add=args.action == "add")
    return _chain_result(chain)


async def rotate_last_serving(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    return _chain_result(await mgmtd.rotate_last_serving(args.chain_id))


async def set_preferred_order(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    return _chain_result(await mgmtd.set_preferred_order(args.chain_id, _flatten(args.target_ids)))


# ----------------------------------------------------------------------------- wiring


def run_command(command: Command, args: argparse.Namespace) -> int:
    """Connect, run ``command`` under ``trio.run`` and print its result; returns exit status 0.
    Errors propagate to ``client.cli.main``, which reports them."""
    connection = resolve_connection(args)
    data, text = trio.run(_session, command, args, connection)
    print(render_json(data) if args.json else text)
    return 0


async def _session(command: Command, args: argparse.Namespace, connection: Connection) -> tuple[Any, str]:
    async with MgmtdClient(connection.addresses, connection.secret, config=connection.config) as mgmtd:
        return await command(mgmtd, args)


def register(subparsers: Any) -> None:
    """Add the ``admin`` command group to the top-level parser's ``subparsers``."""
    admin = subparsers.add_parser(
        "admin",
        help="administer the cluster through mgmtd",
        description="Cluster administration through the primary mgmtd (docs/cli.md).",
    )
    add_connection_options(admin, suppress=False)
    commands = admin.add_subparsers(
        dest="admin_command", metavar="COMMAND", required=True, parser_class=Parser
    )

    def add(name: str, command: Command, help_text: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text, description=help_text)
        add_connection_options(parser, suppress=True)
        parser.set_defaults(run=partial(run_command, command))
        return parser

    add("list-nodes", list_nodes, "list registered nodes")
    add("list-targets", list_targets, "list storage targets and their states")
    add("list-chains", list_chains, "list replication chains (targets head first, with states)")
    add("list-chain-tables", list_chain_tables, "list every version of every chain table")
    add("list-client-sessions", list_client_sessions, "list clients known through their heartbeats")
    add("status", status.status, "the cluster on one screen: nodes, chains, targets, capacity, failures")

    parser = add("create-targets", create_targets, "declare storage targets on storage nodes")
    parser.add_argument(
        "--file", metavar="FILE", help="TOML/JSON with [[targets]] target_id, node_id, capacity_bytes"
    )
    parser.add_argument("--node-id", type=int, metavar="N", help="the node of the --target-id targets")
    parser.add_argument(
        "--target-id", type=id_list, action="append", metavar="IDS", help="e.g. 101,102 or 101-104"
    )
    parser.add_argument("--capacity-bytes", type=int, default=0, metavar="B", help="each target's capacity")

    parser = add("create-chains", create_chains, "create replication chains over existing targets")
    parser.add_argument("--file", metavar="FILE", help="TOML/JSON with [[chains]] chain_id, target_ids")
    parser.add_argument(
        "--chain", type=chain_spec, action="append", metavar="ID:TARGETS", help="e.g. 1:101,201,301"
    )

    parser = add("create-chain-table", create_chain_table, "add a version of a chain table")
    parser.add_argument("table_id", type=int, metavar="TABLE_ID")
    parser.add_argument("chain_ids", type=id_list, nargs="+", metavar="CHAIN_IDS", help="e.g. 1-64 or 1,2,3")
    parser.add_argument("--description", default="", help="free text kept with the table")

    parser = add(
        "gen-chain-table", generate_chain_table, "make balanced chains over the free targets, and a table"
    )
    parser.add_argument("table_id", type=int, metavar="TABLE_ID")
    parser.add_argument("--replication", type=int, required=True, metavar="R", help="targets per chain")
    parser.add_argument(
        "--node-ids", type=id_list, action="append", metavar="IDS", help="only these nodes' targets"
    )
    parser.add_argument("--first-chain-id", type=int, default=0, metavar="N", help="default: after the last")
    parser.add_argument("--description", default="", help="free text kept with the table")

    parser = add("set-node-enabled", set_node_enabled, "disable a node (heartbeats refused) or enable it")
    parser.add_argument("node_id", type=int, metavar="NODE_ID")
    switch = parser.add_mutually_exclusive_group(required=True)
    switch.add_argument("--enable", dest="enabled", action="store_true", default=None)
    switch.add_argument("--disable", dest="enabled", action="store_false")

    parser = add("offline-target", offline_target, "take a target out of service (public OFFLINE)")
    parser.add_argument("target_id", type=int, metavar="TARGET_ID")
    parser = add("remove-target", remove_target, "forget a target (OFFLINE and in no chain)")
    parser.add_argument("target_id", type=int, metavar="TARGET_ID")
    parser.add_argument("--purge", action="store_true", help="first delete its chunks on its storage node")
    parser.add_argument(
        "--node-address", metavar="HOST:PORT", help="with --purge: the node (default: routing)"
    )

    parser = add("update-chain", update_chain, "add a target to a chain (it syncs) or remove one")
    parser.add_argument("chain_id", type=int, metavar="CHAIN_ID")
    parser.add_argument("action", choices=["add", "remove"])
    parser.add_argument("target_id", type=int, metavar="TARGET_ID")

    parser = add("rotate-lastsrv", rotate_last_serving, "make the next target of a chain its LASTSRV")
    parser.add_argument("chain_id", type=int, metavar="CHAIN_ID")

    parser = add("set-preferred-order", set_preferred_order, "order a chain's SERVING targets (head first)")
    parser.add_argument("chain_id", type=int, metavar="CHAIN_ID")
    parser.add_argument("target_ids", type=id_list, nargs="+", metavar="TARGET_IDS")

    storage_admin.register(add)
    meta_admin.register(add)
    users.register(add)
