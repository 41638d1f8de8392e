"""Bringing a cluster on one machine up over RPC, shared by ``threefs up`` and the test
harness: wait for a process's ``listening`` line, for the primary mgmtd, for nodes to register
and for chains to be SERVING; declare targets and generate the chain table.

Each waiting function polls and takes ``check_alive``, a callable that raises when a process of
the cluster has died (so a crash is reported with its log instead of a timeout). None of them
has its own deadline: callers wrap them in ``trio.fail_after``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from threefs.rpc import RpcClient
from threefs.wire import mgmtd as wire

__all__ = [
    "chains_serving",
    "create_missing_targets",
    "ensure_chain_table",
    "mgmtd_call",
    "wait_listening",
    "wait_primary",
    "wait_registered",
    "wait_serving",
]

POLL_S = 0.02
CALL_TIMEOUT_S = 10.0

CheckAlive = Callable[[], None]


async def mgmtd_call(rpc: RpcClient, address: str, spec: Any, request: Any) -> Any:
    """One mgmtd RPC; errors propagate as ``ThreeFSError``."""
    response, _ = await rpc.call(address, spec, request, timeout_s=CALL_TIMEOUT_S)
    return response


def _read_lines(path: Path) -> list[str]:
    """The lines of a small output file ("" while it does not exist)."""
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []


async def wait_listening(out_path: Path, kind: str, node_id: int, check_alive: CheckAlive) -> str:
    """Poll ``out_path`` for ``<kind> <node_id> listening on HOST:PORT``; returns the address."""
    prefix = f"{kind} {node_id} listening on "
    while True:
        for line in _read_lines(out_path):
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        check_alive()
        await trio.sleep(POLL_S)


async def wait_primary(rpc: RpcClient, address: str, check_alive: CheckAlive) -> None:
    """Until the mgmtd at ``address`` holds the lease."""
    while True:
        answer = await mgmtd_call(rpc, address, wire.GET_PRIMARY, wire.GetPrimaryRequest())
        if answer.is_primary:
            return
        check_alive()
        await trio.sleep(POLL_S * 5)


async def wait_registered(rpc: RpcClient, address: str, wanted: set[int], check_alive: CheckAlive) -> None:
    """Until every node of ``wanted`` is ACTIVE at mgmtd."""
    while True:
        nodes = (await mgmtd_call(rpc, address, wire.LIST_NODES, wire.ListNodesRequest())).nodes
        if wanted <= {n.node_id for n in nodes if n.status == wire.NodeStatus.ACTIVE}:
            return
        check_alive()
        await trio.sleep(POLL_S * 5)


def chains_serving(routing: wire.RoutingInfo, chain_ids: list[int]) -> int:
    """How many of ``chain_ids`` have every target SERVING and reported alive."""
    ready = 0
    for chain_id in chain_ids:
        chain = routing.chains.get(chain_id)
        if chain is not None and all(
            r.public_state == wire.PublicTargetState.SERVING
            and routing.targets[r.target_id].local_state != wire.LocalTargetState.OFFLINE
            for r in chain.targets
        ):
            ready += 1
    return ready


async def wait_serving(
    rpc: RpcClient,
    address: str,
    chain_ids: list[int],
    check_alive: CheckAlive,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Until every chain of ``chain_ids`` is fully SERVING; ``progress(ready, total)`` is called
    whenever the count of ready chains changes (and once at the start)."""
    last = -1
    while True:
        reply = await mgmtd_call(rpc, address, wire.GET_ROUTING_INFO, wire.GetRoutingInfoRequest())
        ready = chains_serving(reply.routing, chain_ids)
        if progress is not None and ready != last:
            progress(ready, len(chain_ids))
        last = ready
        if ready == len(chain_ids):
            return
        check_alive()
        await trio.sleep(POLL_S * 5)


async def create_missing_targets(rpc: RpcClient, address: str, targets: dict[int, list[int]]) -> int:
    """Declare at mgmtd each target of ``{node_id: [target_id, ...]}`` it does not know yet;
    returns how many were created."""
    known = {
        t.target_id
        for t in (await mgmtd_call(rpc, address, wire.LIST_TARGETS, wire.ListTargetsRequest())).targets
    }
    missing = [
        wire.TargetInfo(target_id=t, node_id=n) for n, ids in targets.items() for t in ids if t not in known
    ]
    if missing:
        await mgmtd_call(rpc, address, wire.CREATE_TARGETS, wire.CreateTargetsRequest(targets=missing))
    return len(missing)


async def ensure_chain_table(
    rpc: RpcClient, address: str, table_id: int, replication: int
) -> tuple[list[int], int]:
    """The chain ids and version of the newest version of ``table_id``, generated (balanced
    chains over the free targets) when the table does not exist yet."""
    tables = (await mgmtd_call(rpc, address, wire.LIST_CHAIN_TABLES, wire.ListChainTablesRequest())).tables
    versions = [t for t in tables if t.table_id == table_id]
    if versions:
        newest = max(versions, key=lambda t: t.version)
        return list(newest.chain_ids), newest.version
    generated = await mgmtd_call(
        rpc,
        address,
        wire.GENERATE_CHAIN_TABLE,
        wire.GenerateChainTableRequest(table_id=table_id, replication=replication),
    )
    return list(generated.chain_ids), generated.version
