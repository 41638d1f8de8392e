"""The inputs and side effects of chain updates, shared by the chain updater and the admin ops:
a target's effective local state, and keeping ``TargetInfo`` in step with its chain."""

from __future__ import annotations

import msgspec

from mgmtd.components.chain_rules import apply_update
from mgmtd.components.routing_edit import RoutingEdit
from threefs.wire.mgmtd import ChainInfo, LocalTargetState, NodeStatus

__all__ = ["chain_local_states", "effective_local_state", "sync_chain_targets", "update_chain"]


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


def chain_local_states(edit: RoutingEdit, chain: ChainInfo) -> dict[int, LocalTargetState]:
    return {entry.target_id: effective_local_state(edit, entry.target_id) for entry in chain.targets}


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


def update_chain(edit: RoutingEdit, chain: ChainInfo, now_ms: int, grace_ms: int) -> ChainInfo | None:
    """Run the chain rules on ``chain`` and put the result (and its targets' states) into
    ``edit``; returns the new chain, or None when it did not change."""
    updated = apply_update(chain, chain_local_states(edit, chain), now_ms, grace_ms)
    if updated is not None:
        edit.put_chain(updated)
    sync_chain_targets(edit, updated or chain)
    return updated
