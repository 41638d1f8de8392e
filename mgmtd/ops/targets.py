"""Target admin and listing: CreateTargets, OfflineTarget, RemoveTarget, ListTargets."""

from __future__ import annotations

import logging

import msgspec

from mgmtd.components.chain_rules import order_chain
from mgmtd.components.chain_states import check_may_leave_service
from mgmtd.components.routing_edit import RoutingEdit
from mgmtd.state import MgmtdState
from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import (
    ChainTarget,
    CreateTargetsRequest,
    CreateTargetsResponse,
    ListTargetsResponse,
    LocalTargetState,
    NodeType,
    OfflineTargetRequest,
    OfflineTargetResponse,
    PublicTargetState,
    RemoveTargetRequest,
    RemoveTargetResponse,
    TargetInfo,
)

__all__ = ["create_targets", "list_targets", "offline_target", "remove_target"]

log = logging.getLogger("mgmtd.admin")


def list_targets(state: MgmtdState) -> ListTargetsResponse:
    """Every target in id order, with the usage of its last report."""
    routing = state.require_primary()
    targets = [state.live.target_view(routing.targets[i]) for i in sorted(routing.targets)]
    return ListTargetsResponse(targets=targets)


def _create(edit: RoutingEdit, request: CreateTargetsRequest) -> None:
    if not request.targets:
        raise ThreeFSError(Code.INVALID_ARG, "CreateTargets names no target")
    seen: set[int] = set()
    for spec in request.targets:
        if spec.target_id in seen:
            raise ThreeFSError(Code.INVALID_ARG, f"target {spec.target_id} is named twice")
        seen.add(spec.target_id)
        if edit.target(spec.target_id) is not None:
            raise ThreeFSError(Code.ALREADY_EXISTS, f"target {spec.target_id} already exists")
        node = edit.node(spec.node_id)
        if node is not None and node.node_type != NodeType.STORAGE:
            raise ThreeFSError(
                Code.MGMTD_INVALID_TOPOLOGY,
                f"target {spec.target_id}: node {spec.node_id} is a {node.node_type.name} node, not STORAGE",
            )
        edit.put_target(
            TargetInfo(
                target_id=spec.target_id,
                node_id=spec.node_id,
                public_state=PublicTargetState.OFFLINE,
                local_state=LocalTargetState.OFFLINE,
                capacity_bytes=spec.capacity_bytes,
            )
        )


async def create_targets(state: MgmtdState, request: CreateTargetsRequest) -> CreateTargetsResponse:
    """Declare targets, OFFLINE and in no chain until their node reports them and a chain takes
    them. The node need not have registered yet (a storage node may start later), but a
    registered node must be a STORAGE node. Raises ``ALREADY_EXISTS`` for a known target id,
    ``INVALID_ARG`` for an empty request or a repeated id; then nothing is created."""
    committed = await state.mutate(lambda edit: _create(edit, request))
    log.info("created targets %s", [spec.target_id for spec in request.targets])
    return CreateTargetsResponse(routing_version=committed.version)


def _target(edit: RoutingEdit, target_id: int) -> TargetInfo:
    target = edit.target(target_id)
    if target is None:
        raise ThreeFSError(Code.MGMTD_TARGET_NOT_FOUND, f"no target {target_id}")
    return target


def _offline(edit: RoutingEdit, target_id: int) -> TargetInfo:
    target = _target(edit, target_id)
    chain = edit.chain(target.chain_id) if target.chain_id else None
    if chain is not None:
        entries = {entry.target_id: entry for entry in chain.targets}
        entry = entries.get(target_id)
        if entry is not None and entry.public_state != PublicTargetState.OFFLINE:
            check_may_leave_service(chain, target_id)
            targets = [
                ChainTarget(e.target_id, PublicTargetState.OFFLINE) if e.target_id == target_id else e
                for e in chain.targets
            ]
            edit.put_chain(
                msgspec.structs.replace(
                    chain,
                    targets=order_chain(targets, chain.preferred_order),
                    chain_version=chain.chain_version + 1,
                )
            )
    updated = msgspec.structs.replace(target, admin_offline=True, public_state=PublicTargetState.OFFLINE)
    edit.put_target(updated)
    return updated


async def offline_target(state: MgmtdState, request: OfflineTargetRequest) -> OfflineTargetResponse:
    """Take a target out of service: public OFFLINE (at its chain's tail, chain version + 1)
    whatever its node reports, until UpdateChain re-adds it. Refused (``MGMTD_INVALID_TOPOLOGY``)
    for a chain's last SERVING target or its LASTSRV target; ``MGMTD_TARGET_NOT_FOUND`` for an
    unknown id. Offlining an offlined target changes nothing."""
    committed = await state.mutate(lambda edit: _offline(edit, request.target_id))
    if committed.changed:
        log.info("target %d offlined by an admin", request.target_id)
    return OfflineTargetResponse(target=state.live.target_view(committed.result))


def _remove(edit: RoutingEdit, target_id: int) -> None:
    target = _target(edit, target_id)
    if target.chain_id:
        raise ThreeFSError(
            Code.MGMTD_INVALID_TOPOLOGY,
            f"target {target_id} is in chain {target.chain_id}: remove it from the chain first",
        )
    if target.public_state != PublicTargetState.OFFLINE:
        raise ThreeFSError(
            Code.MGMTD_INVALID_TOPOLOGY, f"target {target_id} is {target.public_state.name}, not OFFLINE"
        )
    edit.remove_target(target_id)


async def remove_target(state: MgmtdState, request: RemoveTargetRequest) -> RemoveTargetResponse:
    """Forget a target that is public OFFLINE and in no chain. Raises
    ``MGMTD_TARGET_NOT_FOUND`` or ``MGMTD_INVALID_TOPOLOGY``; then nothing changes."""
    committed = await state.mutate(lambda edit: _remove(edit, request.target_id))
    state.live.target_reports.pop(request.target_id, None)
    log.info("target %d removed", request.target_id)
    return RemoveTargetResponse(routing_version=committed.version)
