"""``threefs status``: the nodes, chains and targets of a cluster as plain data, from mgmtd's
routing info plus, for a local cluster, the pids ``threefs up`` recorded.

The shape (also what ``--json`` prints)::

    {"nodes": [{"node_id", "role", "address", "pid", "state"}],
     "chains": [{"chain_id", "chain_version",
                 "targets": [{"target_id", "node_id", "public_state", "local_state"}]}]}

``role`` is MGMTD, META, STORAGE or CLIENT; ``state`` is mgmtd's view of the node (ACTIVE,
FAILED, DISABLED), STOPPED for a local process that is not running, UNREACHABLE for a mgmtd that
did not answer, STARTING for a running local process mgmtd does not list yet. ``pid`` is null
when unknown (not a local cluster, or not running).
"""

from __future__ import annotations

from typing import Any

import trio

from threefs.errors import ThreeFSError
from threefs.local.configs import MGMTD_NODE_ID
from threefs.rpc import RpcClient, RpcClientConfig
from threefs.wire import mgmtd as wire

__all__ = ["cluster_status"]


async def _routing(rpc: RpcClient, addresses: list[str]) -> tuple[str, wire.RoutingInfo] | tuple[None, None]:
    """The routing info from the first mgmtd that answers as primary."""
    for address in addresses:
        try:
            primary, _ = await rpc.call(address, wire.GET_PRIMARY, wire.GetPrimaryRequest(), timeout_s=3.0)
            if not primary.is_primary:
                continue
            reply, _ = await rpc.call(
                address, wire.GET_ROUTING_INFO, wire.GetRoutingInfoRequest(), timeout_s=5.0
            )
        except (ThreeFSError, OSError, trio.TooSlowError):
            continue
        return address, reply.routing
    return None, None


async def cluster_status(
    addresses: list[str], secret: bytes | str, pids: dict[int, int | None] | None = None
) -> tuple[dict[str, Any], bool]:
    """The status (see the module docstring) and whether a primary mgmtd answered. ``pids``:
    ``{node_id: pid or None}`` of a local cluster's processes (None: not a local cluster)."""
    async with RpcClient(secret, RpcClientConfig(connect_timeout_s=2.0)) as rpc:
        primary, routing = await _routing(rpc, addresses)
    local = pids or {}
    nodes: list[dict[str, Any]] = []

    def state_of(node_id: int, reported: str) -> str:
        if node_id in local and local[node_id] is None:
            return "STOPPED"
        return reported

    nodes.append(
        {
            "node_id": MGMTD_NODE_ID,
            "role": "MGMTD",
            "address": primary or (addresses[0] if addresses else ""),
            "pid": local.get(MGMTD_NODE_ID),
            "state": state_of(MGMTD_NODE_ID, "ACTIVE" if primary else "UNREACHABLE"),
        }
    )
    chains: list[dict[str, Any]] = []
    if routing is not None:
        for node in sorted(routing.nodes.values(), key=lambda n: n.node_id):
            if node.node_id == MGMTD_NODE_ID and node.node_type == wire.NodeType.MGMTD:
                continue
            nodes.append(
                {
                    "node_id": node.node_id,
                    "role": node.node_type.name,
                    "address": ",".join(node.addresses),
                    "pid": local.get(node.node_id),
                    "state": state_of(node.node_id, node.status.name),
                }
            )
        for chain in sorted(routing.chains.values(), key=lambda c: c.chain_id):
            targets = []
            for replica in chain.targets:
                target = routing.targets.get(replica.target_id)
                targets.append(
                    {
                        "target_id": replica.target_id,
                        "node_id": target.node_id if target else 0,
                        "public_state": replica.public_state.name,
                        "local_state": target.local_state.name if target else "OFFLINE",
                    }
                )
            chains.append(
                {"chain_id": chain.chain_id, "chain_version": chain.chain_version, "targets": targets}
            )
    listed = {n["node_id"] for n in nodes}
    for node_id, pid in sorted(local.items()):
        if node_id not in listed:
            nodes.append(
                {
                    "node_id": node_id,
                    "role": "META" if node_id >= 1000 else "STORAGE",
                    "address": "",
                    "pid": pid,
                    "state": "STOPPED" if pid is None else "STARTING",
                }
            )
    return {"nodes": nodes, "chains": chains}, primary is not None
