"""Heartbeat: register a node on its first heartbeat, refresh it afterwards, take a storage
node's target reports, and refuse stale or foreign heartbeats (MGMTD_BAD_HEARTBEAT).

Only routing changes reach the KV engine: a new node, a changed host name / address / version,
a FAILED node coming back, or a target's local state moving. Everything else a heartbeat says
(its time and sequence, target usage) stays in memory (``mgmtd.components.live``).
"""

from __future__ import annotations

import logging

import msgspec

from mgmtd.components.routing_edit import RoutingEdit
from mgmtd.state import MgmtdState
from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import (
    HeartbeatRequest,
    HeartbeatResponse,
    LocalTargetState,
    NodeInfo,
    NodeStatus,
    NodeType,
)

__all__ = ["heartbeat"]

log = logging.getLogger("mgmtd.heartbeat")


def _refuse(request: HeartbeatRequest, why: str) -> ThreeFSError:
    return ThreeFSError(
        Code.MGMTD_BAD_HEARTBEAT, f"heartbeat {request.seq} of node {request.node_id} refused: {why}"
    )


def _check(state: MgmtdState, edit: RoutingEdit, request: HeartbeatRequest, now_ms: int) -> NodeInfo | None:
    """Raise ``MGMTD_BAD_HEARTBEAT`` unless ``request`` may be accepted; returns the node as
    registered (None for a new node)."""
    if request.cluster_id != edit.base.cluster_id:
        raise _refuse(request, f"cluster id {request.cluster_id!r} is not {edit.base.cluster_id!r}")
    skew_ms = request.sent_ms - now_ms
    if abs(skew_ms) > state.config.max_clock_skew_ms:
        raise _refuse(
            request,
            f"its clock is {skew_ms:+d} ms off mgmtd's (at most {state.config.max_clock_skew_ms} ms allowed)",
        )
    node = edit.node(request.node_id)
    if node is not None:
        if node.node_type != request.node_type:
            raise _refuse(
                request,
                f"node {node.node_id} is registered as {node.node_type.name}, not {request.node_type.name}",
            )
        if node.status == NodeStatus.DISABLED:
            raise _refuse(request, f"node {node.node_id} is disabled by an admin")
    record = state.live.heartbeats.get(request.node_id)
    last = (record.started_ms, record.seq) if record is not None else (0, 0)
    if node is not None and record is None:
        last = (node.started_ms, node.heartbeat_seq)
    if (request.started_ms, request.seq) <= last:
        raise _refuse(
            request,
            f"(started_ms, seq) ({request.started_ms}, {request.seq}) is not after the last accepted {last}",
        )
    if request.targets and request.node_type != NodeType.STORAGE:
        raise _refuse(request, f"a {request.node_type.name} node reports no targets")
    seen: set[int] = set()
    for report in request.targets:
        if report.target_id in seen:
            raise _refuse(request, f"target {report.target_id} is reported twice")
        seen.add(report.target_id)
        target = edit.target(report.target_id)
        if target is not None and target.node_id != request.node_id:
            raise _refuse(request, f"target {report.target_id} belongs to node {target.node_id}")
    return node


def _apply(state: MgmtdState, edit: RoutingEdit, request: HeartbeatRequest, now_ms: int) -> str:
    """Validate ``request`` and put the routing changes it makes into ``edit``; returns what
    happened worth a log line ("registered", "back from FAILED", "" otherwise)."""
    node = _check(state, edit, request, now_ms)
    fields = {"hostname": request.hostname, "addresses": list(request.addresses), "version": request.version}
    heard = {"last_heartbeat_ms": now_ms, "heartbeat_seq": request.seq, "started_ms": request.started_ms}
    event = ""
    if node is None:
        edit.put_node(NodeInfo(node_id=request.node_id, node_type=request.node_type, **fields, **heard))
        event = "registered"
    elif node.status != NodeStatus.ACTIVE or any(
        getattr(node, key) != value for key, value in fields.items()
    ):
        edit.put_node(msgspec.structs.replace(node, status=NodeStatus.ACTIVE, **fields, **heard))
        event = "" if node.status == NodeStatus.ACTIVE else f"back from {node.status.name}"
    reported = {report.target_id: report.local_state for report in request.targets}
    for target_id in state.node_targets(request.node_id):
        target = edit.target(target_id)
        local_state = reported.get(target_id, LocalTargetState.OFFLINE)
        if target is not None and target.local_state != local_state:
            edit.put_target(msgspec.structs.replace(target, local_state=local_state))
    return event


async def heartbeat(state: MgmtdState, request: HeartbeatRequest) -> HeartbeatResponse:
    """Accept ``request`` or raise ``MGMTD_BAD_HEARTBEAT`` (see ``HeartbeatRequest``).

    A target the node reports but mgmtd does not know is ignored (it may have just been removed
    by an admin); a target of the node that it does not report counts as local OFFLINE.
    Raises ``MGMTD_NOT_PRIMARY`` / ``MGMTD_LEASE_LOST`` like every routing change.
    """
    routing = state.require_primary()
    now_ms = state.now_ms()
    interval_ms = int(state.config.heartbeat_interval_s * 1000)
    try:
        probe = RoutingEdit(routing)
        _apply(state, probe, request, now_ms)  # the common case changes nothing: no lock, no KV
        version = routing.version
        if probe.changed:
            committed = await state.mutate(lambda edit: _apply(state, edit, request, now_ms))
            version = committed.version
            state.wake_updater()  # a node or target state moved: chains may change
            if committed.result:
                log.info(
                    "node %d (%s) %s, at %s",
                    request.node_id,
                    request.node_type.name,
                    committed.result,
                    request.addresses,
                )
    except ThreeFSError as exc:
        if exc.code == Code.MGMTD_BAD_HEARTBEAT:
            state.heartbeats_refused += 1
            log.warning("%s", exc.message)
        raise
    state.live.record_heartbeat(request.node_id, now_ms, request.started_ms, request.seq)
    for report in request.targets:
        if report.target_id in routing.targets:
            state.live.target_reports[report.target_id] = report
    state.heartbeats_accepted += 1
    return HeartbeatResponse(routing_version=version, heartbeat_interval_ms=interval_ms)
