"""GetPrimary (answered by every mgmtd) and GetRoutingInfo (the primary's routing info)."""

from __future__ import annotations

from mgmtd.state import MgmtdState
from threefs.wire.mgmtd import GetPrimaryResponse, GetRoutingInfoRequest, GetRoutingInfoResponse

__all__ = ["get_primary", "get_routing_info"]


def get_primary(state: MgmtdState) -> GetPrimaryResponse:
    """Who is primary as far as this mgmtd knows: itself, the holder of the last lease row it
    read while that row is unexpired, or nobody ("" address) while an election is pending."""
    if state.is_primary and state.lease is not None:
        lease = state.lease
        return GetPrimaryResponse(
            is_primary=True,
            primary_node_id=lease.holder_node_id,
            primary_address=lease.holder_address,
            lease_expires_ms=lease.expires_ms,
        )
    primary = state.known_primary()
    if primary is None or primary.holder_instance == state.instance:
        return GetPrimaryResponse(is_primary=False)
    return GetPrimaryResponse(
        is_primary=False,
        primary_node_id=primary.holder_node_id,
        primary_address=primary.holder_address,
        lease_expires_ms=primary.expires_ms,
    )


def get_routing_info(state: MgmtdState, request: GetRoutingInfoRequest) -> GetRoutingInfoResponse:
    """The routing info, or None when the caller's ``known_version`` is the current one.
    Nodes and targets carry their last heartbeat figures. Raises ``MGMTD_NOT_PRIMARY``."""
    routing = state.require_primary()
    if request.known_version == routing.version:
        return GetRoutingInfoResponse(routing=None)
    return GetRoutingInfoResponse(routing=state.live.routing_view(routing))
