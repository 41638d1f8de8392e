"""Node admin and listings: ListNodes, SetNodeEnabled, ListClientSessions."""

from __future__ import annotations

import logging

import msgspec

from mgmtd.components.routing_edit import RoutingEdit
from mgmtd.state import MgmtdState
from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import (
    ClientSession,
    ListClientSessionsResponse,
    ListNodesResponse,
    LocalTargetState,
    NodeInfo,
    NodeStatus,
    NodeType,
    SetNodeEnabledRequest,
    SetNodeEnabledResponse,
)

__all__ = ["list_client_sessions", "list_nodes", "set_node_enabled"]

log = logging.getLogger("mgmtd.admin")


def list_nodes(state: MgmtdState) -> ListNodesResponse:
    """Every registered node in id order, with its last heartbeat time and sequence."""
    routing = state.require_primary()
    return ListNodesResponse(nodes=[state.live.node_view(routing.nodes[i]) for i in sorted(routing.nodes)])


def list_client_sessions(state: MgmtdState) -> ListClientSessionsResponse:
    """The nodes of type CLIENT (FUSE mounts, library clients), in id order."""
    routing = state.require_primary()
    sessions = []
    for node_id in sorted(routing.nodes):
        node = state.live.node_view(routing.nodes[node_id])
        if node.node_type == NodeType.CLIENT:
            sessions.append(
                ClientSession(
                    node_id=node.node_id,
                    hostname=node.hostname,
                    addresses=list(node.addresses),
                    version=node.version,
                    last_heartbeat_ms=node.last_heartbeat_ms,
                    status=node.status,
                )
            )
    return ListClientSessionsResponse(sessions=sessions)


def _set_enabled(state: MgmtdState, edit: RoutingEdit, request: SetNodeEnabledRequest) -> NodeInfo:
    node = edit.node(request.node_id)
    if node is None:
        raise ThreeFSError(Code.MGMTD_NODE_NOT_FOUND, f"no node {request.node_id} is registered")
    if request.enabled:
        if node.status != NodeStatus.DISABLED:
            return node
        updated = msgspec.structs.replace(node, status=NodeStatus.ACTIVE)
        state.live.give_grace(node.node_id, state.now_ms())  # harmless if the commit fails
    else:
        if node.status == NodeStatus.DISABLED:
            return node
        updated = msgspec.structs.replace(node, status=NodeStatus.DISABLED)
        for target_id in state.node_targets(node.node_id):
            target = edit.target(target_id)
            if target is not None and target.local_state != LocalTargetState.OFFLINE:
                edit.put_target(msgspec.structs.replace(target, local_state=LocalTargetState.OFFLINE))
    edit.put_node(updated)
    return updated


async def set_node_enabled(state: MgmtdState, request: SetNodeEnabledRequest) -> SetNodeEnabledResponse:
    """Disable a node (its heartbeats are refused, its targets count as local OFFLINE) or enable
    it again: it becomes ACTIVE with a fresh heartbeat grace period, and its targets return once
    it reports them. Enabling an enabled node (or disabling a disabled one) changes nothing.
    Raises ``MGMTD_NODE_NOT_FOUND`` for an unknown node id."""
    committed = await state.mutate(lambda edit: _set_enabled(state, edit, request))
    if committed.changed:
        state.wake_updater()
        log.info("node %d %s", request.node_id, "enabled" if request.enabled else "disabled")
    return SetNodeEnabledResponse(node=state.live.node_view(committed.result))
