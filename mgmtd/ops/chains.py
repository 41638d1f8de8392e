"""Chain admin and listing: CreateChains, UpdateChain, RotateLastServing, SetPreferredOrder,
ListChains. Every change that touches a chain's targets bumps its ``chain_version``."""

from __future__ import annotations

import logging

import msgspec

from mgmtd.components.chain_rules import order_chain, rotate_last_serving
from mgmtd.components.chain_states import check_may_leave_service, sync_chain_targets
from mgmtd.components.routing_edit import RoutingEdit
from mgmtd.state import MgmtdState
from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import (
    ChainInfo,
    ChainSpec,
    ChainTarget,
    CreateChainsRequest,
    CreateChainsResponse,
    ListChainsResponse,
    PublicTargetState,
    RotateLastServingRequest,
    RotateLastServingResponse,
    SetPreferredOrderRequest,
    SetPreferredOrderResponse,
    TargetInfo,
    UpdateChainRequest,
    UpdateChainResponse,
)

__all__ = ["create_chains", "list_chains", "rotate_last_serving_op", "set_preferred_order", "update_chain_op"]

log = logging.getLogger("mgmtd.admin")


def list_chains(state: MgmtdState) -> ListChainsResponse:
    routing = state.require_primary()
    return ListChainsResponse(chains=[routing.chains[i] for i in sorted(routing.chains)])


def _chain(edit: RoutingEdit, chain_id: int) -> ChainInfo:
    chain = edit.chain(chain_id)
    if chain is None:
        raise ThreeFSError(Code.MGMTD_CHAIN_NOT_FOUND, f"no chain {chain_id}")
    return chain


def _free_target(edit: RoutingEdit, target_id: int, chain_id: int) -> TargetInfo:
    """The target, which must exist and be in no chain."""
    target = edit.target(target_id)
    if target is None:
        raise ThreeFSError(Code.MGMTD_TARGET_NOT_FOUND, f"chain {chain_id}: no target {target_id}")
    if target.chain_id:
        raise ThreeFSError(
            Code.MGMTD_INVALID_TOPOLOGY,
            f"chain {chain_id}: target {target_id} is already in chain {target.chain_id}",
        )
    return target


def create_chain_in(edit: RoutingEdit, spec: ChainSpec, now_ms: int) -> None:
    """Add the chain ``spec`` to ``edit`` (targets start SERVING, grace from ``now_ms``); raises
    ``ALREADY_EXISTS``, ``INVALID_ARG``, ``MGMTD_TARGET_NOT_FOUND`` or ``MGMTD_INVALID_TOPOLOGY``."""
    if edit.chain(spec.chain_id) is not None:
        raise ThreeFSError(Code.ALREADY_EXISTS, f"chain {spec.chain_id} already exists")
    if not spec.target_ids:
        raise ThreeFSError(Code.INVALID_ARG, f"chain {spec.chain_id} names no target")
    target_on_node: dict[int, int] = {}
    for target_id in spec.target_ids:
        target = _free_target(edit, target_id, spec.chain_id)
        other = target_on_node.setdefault(target.node_id, target_id)
        if other != target_id:
            raise ThreeFSError(
                Code.MGMTD_INVALID_TOPOLOGY,
                f"chain {spec.chain_id}: targets {other} and {target_id} are both on node {target.node_id}",
            )
    chain = ChainInfo(
        chain_id=spec.chain_id,
        chain_version=1,
        targets=[ChainTarget(target_id, PublicTargetState.SERVING) for target_id in spec.target_ids],
        created_ms=now_ms,
    )
    edit.put_chain(chain)
    sync_chain_targets(edit, chain)  # also claims the targets, so a later spec cannot reuse one


def _create(edit: RoutingEdit, request: CreateChainsRequest, now_ms: int) -> None:
    if not request.chains:
        raise ThreeFSError(Code.INVALID_ARG, "CreateChains names no chain")
    for spec in request.chains:
        create_chain_in(edit, spec, now_ms)


async def create_chains(state: MgmtdState, request: CreateChainsRequest) -> CreateChainsResponse:
    """Create chains whose targets start SERVING, head first as given, with the grace period of
    ``chain_grace_s`` before the chain rules may fail a target that has not reported. All or
    nothing: an existing chain id (``ALREADY_EXISTS``), an unknown target
    (``MGMTD_TARGET_NOT_FOUND``), a target in another chain or two targets on one node
    (``MGMTD_INVALID_TOPOLOGY``) refuses the whole request."""
    now_ms = state.now_ms()
    committed = await state.mutate(lambda edit: _create(edit, request, now_ms))
    log.info("created chains %s", [spec.chain_id for spec in request.chains])
    return CreateChainsResponse(routing_version=committed.version)


def _new_version(chain: ChainInfo, targets: list[ChainTarget], **changes: object) -> ChainInfo:
    return msgspec.structs.replace(chain, targets=targets, chain_version=chain.chain_version + 1, **changes)


def _add(edit: RoutingEdit, chain: ChainInfo, target_id: int) -> ChainInfo:
    target = edit.target(target_id)
    in_chain = any(entry.target_id == target_id for entry in chain.targets)
    if target is not None and in_chain:
        if not target.admin_offline:
            raise ThreeFSError(
                Code.ALREADY_EXISTS, f"target {target_id} is already in chain {chain.chain_id}"
            )
        targets = [entry for entry in chain.targets if entry.target_id != target_id]  # re-added below
    else:
        target = _free_target(edit, target_id, chain.chain_id)
        targets = list(chain.targets)
    for entry in targets:
        other = edit.target(entry.target_id)
        if other is not None and other.node_id == target.node_id:
            raise ThreeFSError(
                Code.MGMTD_INVALID_TOPOLOGY,
                f"chain {chain.chain_id} already has target {other.target_id} on node {target.node_id}",
            )
    targets.append(ChainTarget(target_id, PublicTargetState.WAITING))
    updated = _new_version(chain, order_chain(targets, chain.preferred_order))
    edit.put_target(msgspec.structs.replace(target, admin_offline=False))
    return updated


def _remove(edit: RoutingEdit, chain: ChainInfo, target_id: int) -> ChainInfo:
    entry = next((entry for entry in chain.targets if entry.target_id == target_id), None)
    if entry is None:
        raise ThreeFSError(
            Code.MGMTD_TARGET_NOT_FOUND, f"target {target_id} is not in chain {chain.chain_id}"
        )
    others = [e for e in chain.targets if e.target_id != target_id]
    if not others:
        raise ThreeFSError(
            Code.MGMTD_INVALID_TOPOLOGY, f"target {target_id} is chain {chain.chain_id}'s only target"
        )
    check_may_leave_service(chain, target_id)
    target = edit.target(target_id)
    if target is not None:
        edit.put_target(
            msgspec.structs.replace(
                target, chain_id=0, public_state=PublicTargetState.OFFLINE, admin_offline=False
            )
        )
    preferred = [t for t in chain.preferred_order if t != target_id]
    return _new_version(chain, others, preferred_order=preferred)


def _update(edit: RoutingEdit, request: UpdateChainRequest) -> ChainInfo:
    chain = _chain(edit, request.chain_id)
    updated = _add(edit, chain, request.target_id) if request.add else _remove(edit, chain, request.target_id)
    edit.put_chain(updated)
    sync_chain_targets(edit, updated)
    return updated


async def update_chain_op(state: MgmtdState, request: UpdateChainRequest) -> UpdateChainResponse:
    """Add a target to a chain (it must exist, be in no chain, and sit on a node the chain does
    not use; it joins WAITING and the chain rules sync it), re-add an offlined member, or remove
    a target (it leaves OFFLINE and in no chain; refused for the last SERVING target, the LASTSRV
    target or the only target). The chain version goes up by one."""
    committed = await state.mutate(lambda edit: _update(edit, request))
    state.wake_updater()
    verb = "added to" if request.add else "removed from"
    log.info("target %d %s chain %d", request.target_id, verb, request.chain_id)
    return UpdateChainResponse(chain=committed.result)


def _rotate(edit: RoutingEdit, chain_id: int) -> ChainInfo:
    chain = _chain(edit, chain_id)
    updated = _new_version(chain, rotate_last_serving(chain))
    edit.put_chain(updated)
    sync_chain_targets(edit, updated)
    return updated


async def rotate_last_serving_op(
    state: MgmtdState, request: RotateLastServingRequest
) -> RotateLastServingResponse:
    """Give up a chain's LASTSRV target for good: the next target becomes LASTSRV (see
    ``chain_rules.rotate_last_serving``). Raises ``MGMTD_INVALID_TOPOLOGY`` when the chain has
    no LASTSRV target, still has a SERVING one, or has no other target."""
    committed = await state.mutate(lambda edit: _rotate(edit, request.chain_id))
    state.wake_updater()
    log.warning("chain %d: LASTSRV rotated by an admin: %s", request.chain_id, committed.result.targets)
    return RotateLastServingResponse(chain=committed.result)


def _prefer(edit: RoutingEdit, request: SetPreferredOrderRequest) -> ChainInfo:
    chain = _chain(edit, request.chain_id)
    members = [entry.target_id for entry in chain.targets]
    if len(set(request.target_ids)) != len(request.target_ids) or set(request.target_ids) != set(members):
        raise ThreeFSError(
            Code.INVALID_ARG,
            f"the preferred order {request.target_ids} must name each target of chain {chain.chain_id} "
            f"({sorted(members)}) once",
        )
    preferred = list(request.target_ids)
    targets = order_chain(chain.targets, preferred)  # states are the chain updater's business
    if targets != chain.targets:
        updated = _new_version(chain, targets, preferred_order=preferred)
    else:
        updated = msgspec.structs.replace(chain, preferred_order=preferred)
    edit.put_chain(updated)
    sync_chain_targets(edit, updated)
    return updated


async def set_preferred_order(
    state: MgmtdState, request: SetPreferredOrderRequest
) -> SetPreferredOrderResponse:
    """Set the order of a chain's SERVING targets (head first) and apply it at once; it must name
    each of the chain's targets exactly once (``INVALID_ARG`` otherwise)."""
    committed = await state.mutate(lambda edit: _prefer(edit, request))
    return SetPreferredOrderResponse(chain=committed.result)
