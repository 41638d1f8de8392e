"""The inputs and side effects of chain updates, shared by the chain updater and the admin ops:
a target's effective local state, and keeping ``TargetInfo`` in step with its chain."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from mgmtd.components.chain_rules import apply_update
from mgmtd.components.routing_edit import RoutingEdit
from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import ChainInfo, LocalTargetState, NodeStatus, PublicTargetState

__all__ = [
    "chain_local_states",
    "check_may_leave_service",
    "effective_local_state",
    "sync_chain_targets",
    "update_chain",
]


def effective_local_state(edit: RoutingEdit, target_id: int) -> LocalTargetState:
    """The local state the chain rules see: what the node last reported, except OFFLINE when the
    target is unknown or offlined by an admin, or its node is unknown, FAILED or DISABLED."""
    target = edit.target(target_id)
    if target is None or target.admin_offline:
        return LocalTargetState.OFFLINE
    node = edit.node(target.node_id)
    if node is None or node.status != NodeStatus.ACTIVE:
        return LocalTargetState.OFFLINE
    return target.local_state


def chain_local_states(
    edit: RoutingEdit, chain: ChainInfo, reported_chain_versions: Mapping[int, int] | None = None
) -> dict[int, LocalTargetState]:
    """Each target's effective local state. With ``reported_chain_versions`` (target id -> the
    chain version in its last heartbeat), a SYNCING target's UPTODATE counts only when it names
    the chain's current version: a sync finished under an older chain version (the chain changed
    meanwhile) does not make it SERVING; it counts as ONLINE until it reports the current one."""
    states = {}
    for entry in chain.targets:
        state = effective_local_state(edit, entry.target_id)
        if (
            reported_chain_versions is not None
            and state == LocalTargetState.UPTODATE
            and entry.public_state == PublicTargetState.SYNCING
            and reported_chain_versions.get(entry.target_id, 0) != chain.chain_version
        ):
            state = LocalTargetState.ONLINE
        states[entry.target_id] = state
    return states


def sync_chain_targets(edit: RoutingEdit, chain: ChainInfo) -> None:
    """Give each target of ``chain`` its public state in the chain and the chain's id."""
    for entry in chain.targets:
        target = edit.target(entry.target_id)
        if target is not None and (
            target.public_state != entry.public_state or target.chain_id != chain.chain_id
        ):
            edit.put_target(
                msgspec.structs.replace(target, public_state=entry.public_state, chain_id=chain.chain_id)
            )


def update_chain(
    edit: RoutingEdit,
    chain: ChainInfo,
    now_ms: int,
    grace_ms: int,
    reported_chain_versions: Mapping[int, int] | None = None,
) -> ChainInfo | None:
    """Run the chain rules on ``chain`` and put the result (and its targets' states) into
    ``edit``; returns the new chain, or None when it did not change. ``reported_chain_versions``
    as for ``chain_local_states``."""
    local_states = chain_local_states(edit, chain, reported_chain_versions)
    updated = apply_update(chain, local_states, now_ms, grace_ms)
    if updated is not None:
        edit.put_chain(updated)
    sync_chain_targets(edit, updated or chain)
    return updated


def check_may_leave_service(chain: ChainInfo, target_id: int) -> None:
    """Refuse (MGMTD_INVALID_TOPOLOGY) taking ``target_id`` out of ``chain`` when it is the
    chain's last SERVING target or its LASTSRV (whose loss needs RotateLastServing): either would
    leave the chain with no replica holding the latest data."""
    states = {entry.target_id: entry.public_state for entry in chain.targets}
    state = states.get(target_id)
    serving = [tid for tid, public in states.items() if public == PublicTargetState.SERVING]
    if state == PublicTargetState.SERVING and serving == [target_id]:
        raise ThreeFSError(
            Code.MGMTD_INVALID_TOPOLOGY,
            f"target {target_id} is the last SERVING target of chain {chain.chain_id}",
        )
    if state == PublicTargetState.LASTSRV:
        raise ThreeFSError(
            Code.MGMTD_INVALID_TOPOLOGY,
            f"target {target_id} is the LASTSRV target of chain {chain.chain_id}: "
            "use RotateLastServing if it is lost",
        )
