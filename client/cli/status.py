"""`threefs admin status`: the cluster on one screen, from one snapshot of the primary mgmtd's
routing info: the mgmtds, nodes by role and state, chains and targets by state, capacity, and
what is failing now (docs/cli.md documents the JSON keys).

``summarize`` is a pure function of the routing info and what each mgmtd address answered, so
the rules are tested without a cluster; ``render`` is the text form; ``status`` is the admin
command (signature ``(mgmtd, args) -> (data, text)``).

Chain states (mgmtd has none; they are derived from the replicas' public states):
SERVING every replica is SERVING; DEGRADED at least one is SERVING, not all (reads and writes
work with less redundancy); UNAVAILABLE none is SERVING (a LASTSRV target must come back first).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from typing import Any

import trio

from client.cli.common import format_age, format_bytes, render_table
from client.mgmtd import MgmtdClient
from threefs.errors import Code, ThreeFSError
from threefs.wire import mgmtd as wire

__all__ = ["CHAIN_STATES", "chain_state", "render", "status", "summarize"]

CHAIN_STATES = ("SERVING", "DEGRADED", "UNAVAILABLE")
MGMTD_STATES = ("PRIMARY", "STANDBY", "UNREACHABLE")
_KIND_ORDER = {"node": 0, "chain": 1, "target": 2}
_FAILURES_SHOWN = 20  # text output only; --json lists every failure
_PROBE_TIMEOUT_S = 2.0

SERVING = wire.PublicTargetState.SERVING


def chain_state(chain: wire.ChainInfo) -> str:
    """SERVING, DEGRADED or UNAVAILABLE (see the module docstring)."""
    serving = sum(1 for replica in chain.targets if replica.public_state == SERVING)
    if serving and serving == len(chain.targets):
        return "SERVING"
    return "DEGRADED" if serving else "UNAVAILABLE"


def _counts(values: list[str], keys: list[str]) -> dict[str, int]:
    """A count for every key (0 when absent), in the keys' order."""
    found = Counter(values)
    return {key: found[key] for key in keys}


def _failure(
    kind: str,
    ident: int,
    state: str,
    since_ms: int | None,
    detail: str,
    *,
    node_id: int | None = None,
    chain_id: int | None = None,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "id": ident,
        "state": state,
        "node_id": node_id,
        "chain_id": chain_id,
        "since_ms": since_ms,
        "detail": detail,
    }


def _node_failures(nodes: list[wire.NodeInfo], since: dict[int, int | None]) -> list[dict[str, Any]]:
    """Nodes not ACTIVE, clients left out; fills ``since`` (node id -> last heartbeat) for every
    node not ACTIVE."""
    failures = []
    for node in nodes:
        if node.status == wire.NodeStatus.ACTIVE:
            continue
        since[node.node_id] = node.last_heartbeat_ms or None
        if node.node_type == wire.NodeType.CLIENT:
            continue
        where = ",".join(node.addresses) or node.hostname or "no address"
        why = "disabled by an admin" if node.status == wire.NodeStatus.DISABLED else "no heartbeat"
        detail = f"{node.node_type.name} {where}: {why}"
        failures.append(
            _failure(
                "node", node.node_id, node.status.name, since[node.node_id], detail, node_id=node.node_id
            )
        )
    return failures


def _target_failures(
    routing: wire.RoutingInfo, node_since: dict[int, int | None], since: dict[int, int | None]
) -> list[dict[str, Any]]:
    """Targets in a chain that are not SERVING or are local OFFLINE; fills ``since``."""
    failures = []
    for target in sorted(routing.targets.values(), key=lambda t: t.target_id):
        local_offline = target.local_state == wire.LocalTargetState.OFFLINE
        if not target.chain_id or (target.public_state == SERVING and not local_offline):
            continue
        since[target.target_id] = node_since.get(target.node_id)
        node = routing.nodes.get(target.node_id)
        node_text = f"node {target.node_id} ({node.status.name if node else 'unknown'})"
        detail = f"local {target.local_state.name}, {node_text}, chain {target.chain_id}"
        if target.admin_offline:
            detail += ", offlined by an admin"
        failures.append(
            _failure(
                "target",
                target.target_id,
                target.public_state.name,
                since[target.target_id],
                detail,
                node_id=target.node_id,
                chain_id=target.chain_id,
            )
        )
    return failures


def _chain_failure(chain: wire.ChainInfo, state: str, target_since: dict[int, int | None]) -> dict[str, Any]:
    known = [
        since
        for replica in chain.targets
        if replica.public_state != SERVING and (since := target_since.get(replica.target_id))
    ]
    replicas = " ".join(f"{r.target_id}:{r.public_state.name}" for r in chain.targets) or "no targets"
    detail = f"version {chain.chain_version}: {replicas}"
    return _failure("chain", chain.chain_id, state, min(known, default=None), detail, chain_id=chain.chain_id)


def summarize(routing: wire.RoutingInfo, mgmtds: list[dict[str, str]], primary: str) -> dict[str, Any]:
    """The status as plain data (the ``--json`` object).

    ``mgmtds``: ``{"address", "state" (PRIMARY/STANDBY/UNREACHABLE), "detail"}`` per configured
    mgmtd address; ``primary``: the address the routing info came from.

    Failures: every node of role MGMTD, META or STORAGE that is not ACTIVE (clients come and go);
    every chain that is not SERVING; every target in a chain that is not public SERVING or whose
    local state is OFFLINE; nodes, then chains, then targets, most recent first in each.
    ``since_ms`` (mgmtd's wall clock, null when unknown): for a node, the last heartbeat mgmtd
    accepted from it; for a target, that of its node when the node is not ACTIVE; for a chain,
    the earliest of its failing targets' ``since_ms``.
    """
    nodes = sorted(routing.nodes.values(), key=lambda n: n.node_id)
    targets = sorted(routing.targets.values(), key=lambda t: t.target_id)
    chains = sorted(routing.chains.values(), key=lambda c: c.chain_id)
    status_names = [s.name for s in wire.NodeStatus]
    by_role = {
        role.name: _counts([n.status.name for n in nodes if n.node_type == role], status_names)
        for role in wire.NodeType
    }
    node_since: dict[int, int | None] = {}
    target_since: dict[int, int | None] = {}
    failures = _node_failures(nodes, node_since)
    failures += _target_failures(routing, node_since, target_since)
    chain_states = [chain_state(chain) for chain in chains]
    failures += [
        _chain_failure(chain, state, target_since)
        for chain, state in zip(chains, chain_states, strict=True)
        if state != "SERVING"
    ]
    failures.sort(key=lambda f: (_KIND_ORDER[f["kind"]], -(f["since_ms"] or 0), f["id"]))

    reporting = [t for t in targets if t.capacity_bytes]
    total = sum(t.capacity_bytes for t in reporting)
    used = sum(t.used_bytes for t in targets)
    unavailable = chain_states.count("UNAVAILABLE")
    healthy = not failures and all(m["state"] != "UNREACHABLE" for m in mgmtds)
    return {
        "health": "UNAVAILABLE" if unavailable else "OK" if healthy else "DEGRADED",
        "cluster_id": routing.cluster_id,
        "routing_version": routing.version,
        "mgmtd": {"primary": primary, "addresses": mgmtds},
        "nodes": {"total": len(nodes), "by_role": by_role},
        "chains": {"total": len(chains), "by_state": _counts(chain_states, list(CHAIN_STATES))},
        "targets": {
            "total": len(targets),
            "in_no_chain": sum(1 for t in targets if not t.chain_id),
            "by_public_state": _counts(
                [t.public_state.name for t in targets], [s.name for s in wire.PublicTargetState]
            ),
            "by_local_state": _counts(
                [t.local_state.name for t in targets], [s.name for s in wire.LocalTargetState]
            ),
        },
        "capacity": {
            "total_bytes": total,
            "used_bytes": used,
            "free_bytes": max(total - used, 0),
            "reporting_targets": len(reporting),
        },
        "failures": failures,
    }


# ----------------------------------------------------------------------------- text


def _nonzero(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {name}" for name, count in counts.items() if count) or "none"


def render(data: dict[str, Any], now_s: float | None = None) -> str:
    """The status as text: a header, the mgmtds, a table of nodes by role, one line each for
    chains, targets and capacity, and the failures (at most 20; ``--json`` lists all)."""
    mgmtd = data["mgmtd"]
    lines = [
        f"cluster {data['cluster_id']}: {data['health']}  (routing version {data['routing_version']})",
        "mgmtd     " + "  ".join(f"{m['address']} {m['state']}" for m in mgmtd["addresses"]),
        "",
    ]
    status_names = [s.name for s in wire.NodeStatus]
    rows = [
        [role, *(counts[name] for name in status_names)]
        for role, counts in data["nodes"]["by_role"].items()
        if sum(counts.values()) or role in ("META", "STORAGE")
    ]
    lines += [render_table(["ROLE", *status_names], rows), ""]
    chains, targets, capacity = data["chains"], data["targets"], data["capacity"]
    lines.append(f"chains    {chains['total']}: {_nonzero(chains['by_state'])}")
    lines.append(
        f"targets   {targets['total']} ({targets['in_no_chain']} in no chain): public "
        f"{_nonzero(targets['by_public_state'])}; local {_nonzero(targets['by_local_state'])}"
    )
    total, used = capacity["total_bytes"], capacity["used_bytes"]
    share = f" ({100 * used / total:.1f}%)" if total else ""
    lines.append(
        f"capacity  {format_bytes(total)} total, {format_bytes(used)} used{share}, "
        f"{format_bytes(capacity['free_bytes'])} free, from {capacity['reporting_targets']} target(s)"
    )
    lines.append("")
    failures = data["failures"]
    if not failures:
        lines.append("no failures")
        return "\n".join(lines)
    lines.append(f"FAILURES ({len(failures)})")
    rows = [
        [
            f["kind"],
            f["id"],
            f["state"],
            format_age(f["since_ms"], now_s) if f["since_ms"] else "-",
            f["detail"],
        ]
        for f in failures[:_FAILURES_SHOWN]
    ]
    lines.append(render_table(["KIND", "ID", "STATE", "SINCE", "DETAIL"], rows))
    if len(failures) > _FAILURES_SHOWN:
        lines.append(f"... and {len(failures) - _FAILURES_SHOWN} more (--json lists every one)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the command


async def _probe(mgmtd: MgmtdClient, address: str, timeout_s: float) -> dict[str, str]:
    """What the mgmtd at ``address`` says of itself: PRIMARY, STANDBY or UNREACHABLE."""
    try:
        answer = await mgmtd.get_primary(address, timeout_s=timeout_s)
    except ThreeFSError as exc:
        return {"address": address, "state": "UNREACHABLE", "detail": f"{exc.code.name}: {exc.message}"}
    if answer.is_primary:
        return {"address": address, "state": "PRIMARY", "detail": ""}
    named = answer.primary_address or "unknown"
    return {"address": address, "state": "STANDBY", "detail": f"primary {named}"}


async def status(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    """Fetch the routing info from the primary (retried within ``--timeout``), ask every
    configured mgmtd address once whether it is primary, and summarize. Raises what
    ``MgmtdClient`` raises when no primary answers (the CLI exits 3)."""
    routing = await mgmtd.get_routing_info()
    if routing is None:  # only when a known version is passed, which we never do
        raise ThreeFSError(Code.INTERNAL, "mgmtd sent no routing info")
    primary = mgmtd.known_primary or ""
    probes: dict[str, dict[str, str]] = {}
    timeout_s = min(mgmtd.config.attempt_timeout_s, _PROBE_TIMEOUT_S)

    async def probe(address: str) -> None:
        probes[address] = await _probe(mgmtd, address, timeout_s)

    async with trio.open_nursery() as nursery:
        for address in mgmtd.addresses:
            nursery.start_soon(probe, address)
    mgmtds = [probes[address] for address in mgmtd.addresses]
    if primary and primary not in probes:  # reached through a redirect, not in the list given
        mgmtds.append({"address": primary, "state": "PRIMARY", "detail": "named by another mgmtd"})
    data = summarize(routing, mgmtds, primary)
    return data, render(data, time.time())
