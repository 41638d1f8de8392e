"""The mgmtd RPC service: thin handlers that check primaryship and call ``mgmtd.ops``.

Every method except GetPrimary answers ``MGMTD_NOT_PRIMARY`` (naming the primary when one is
known, see ``threefs.wire.mgmtd.not_primary_message``) on a mgmtd that is not primary. On a
user-token connection, ``authorize_user`` first applies ``ADMIN_METHODS`` / ``USER_METHODS`` /
``SERVICE_METHODS`` (docs/security.md).
"""

from __future__ import annotations

from typing import Any

from mgmtd import ops
from mgmtd.ops import users as user_ops
from mgmtd.state import MgmtdState
from threefs.errors import Code, ThreeFSError
from threefs.rpc import CachedUserDirectory, CallContext, Identity, RpcService, rpc_method
from threefs.rpc.transport import Buffer
from threefs.wire import mgmtd as wire
from threefs.wire.common import MethodSpec

__all__ = ["MgmtdService"]


class MgmtdService(RpcService):
    """Serves ``threefs.wire.mgmtd.MGMTD_SERVICE`` from one mgmtd's ``MgmtdState``."""

    spec = wire.MGMTD_SERVICE

    def __init__(self, state: MgmtdState, users: CachedUserDirectory | None = None) -> None:
        self.state = state
        # the users this mgmtd's server checks tokens against (default: read from its KV store)
        self.users = users if users is not None else user_ops.kv_user_directory(state.engine)

    def authorize_user(self, identity: Identity, spec: MethodSpec, request: Any) -> None:
        """Routing reads are open to every user, admin methods to admin users, heartbeats and
        UserKeys to cluster members only (PERMISSION_DENIED otherwise)."""
        method_id = spec.method_id
        if method_id in wire.USER_METHODS or (method_id in wire.ADMIN_METHODS and identity.admin):
            return
        who = "cluster members (the cluster secret)" if method_id in wire.SERVICE_METHODS else "admin users"
        raise ThreeFSError(
            Code.PERMISSION_DENIED, f"{spec.name} is for {who}; user {identity.name!r} is not one"
        )

    @rpc_method(wire.GET_PRIMARY)
    async def get_primary(
        self, ctx: CallContext, request: wire.GetPrimaryRequest, payload: Buffer
    ) -> wire.GetPrimaryResponse:
        return ops.get_primary(self.state)

    @rpc_method(wire.HEARTBEAT)
    async def heartbeat(
        self, ctx: CallContext, request: wire.HeartbeatRequest, payload: Buffer
    ) -> wire.HeartbeatResponse:
        self.state.require_primary()
        return await ops.heartbeat(self.state, request)

    @rpc_method(wire.GET_ROUTING_INFO)
    async def get_routing_info(
        self, ctx: CallContext, request: wire.GetRoutingInfoRequest, payload: Buffer
    ) -> wire.GetRoutingInfoResponse:
        self.state.require_primary()
        return ops.get_routing_info(self.state, request)

    @rpc_method(wire.CREATE_TARGETS)
    async def create_targets(
        self, ctx: CallContext, request: wire.CreateTargetsRequest, payload: Buffer
    ) -> wire.CreateTargetsResponse:
        self.state.require_primary()
        return await ops.create_targets(self.state, request)

    @rpc_method(wire.CREATE_CHAINS)
    async def create_chains(
        self, ctx: CallContext, request: wire.CreateChainsRequest, payload: Buffer
    ) -> wire.CreateChainsResponse:
        self.state.require_primary()
        return await ops.create_chains(self.state, request)

    @rpc_method(wire.CREATE_CHAIN_TABLE)
    async def create_chain_table(
        self, ctx: CallContext, request: wire.CreateChainTableRequest, payload: Buffer
    ) -> wire.CreateChainTableResponse:
        self.state.require_primary()
        return await ops.create_chain_table(self.state, request)

    @rpc_method(wire.GENERATE_CHAIN_TABLE)
    async def generate_chain_table(
        self, ctx: CallContext, request: wire.GenerateChainTableRequest, payload: Buffer
    ) -> wire.GenerateChainTableResponse:
        self.state.require_primary()
        return await ops.generate_chain_table(self.state, request)

    @rpc_method(wire.LIST_NODES)
    async def list_nodes(
        self, ctx: CallContext, request: wire.ListNodesRequest, payload: Buffer
    ) -> wire.ListNodesResponse:
        self.state.require_primary()
        return ops.list_nodes(self.state)

    @rpc_method(wire.LIST_TARGETS)
    async def list_targets(
        self, ctx: CallContext, request: wire.ListTargetsRequest, payload: Buffer
    ) -> wire.ListTargetsResponse:
        self.state.require_primary()
        return ops.list_targets(self.state)

    @rpc_method(wire.LIST_CHAINS)
    async def list_chains(
        self, ctx: CallContext, request: wire.ListChainsRequest, payload: Buffer
    ) -> wire.ListChainsResponse:
        self.state.require_primary()
        return ops.list_chains(self.state)

    @rpc_method(wire.LIST_CHAIN_TABLES)
    async def list_chain_tables(
        self, ctx: CallContext, request: wire.ListChainTablesRequest, payload: Buffer
    ) -> wire.ListChainTablesResponse:
        self.state.require_primary()
        return ops.list_chain_tables(self.state)

    @rpc_method(wire.SET_NODE_ENABLED)
    async def set_node_enabled(
        self, ctx: CallContext, request: wire.SetNodeEnabledRequest, payload: Buffer
    ) -> wire.SetNodeEnabledResponse:
        self.state.require_primary()
        return await ops.set_node_enabled(self.state, request)

    @rpc_method(wire.OFFLINE_TARGET)
    async def offline_target(
        self, ctx: CallContext, request: wire.OfflineTargetRequest, payload: Buffer
    ) -> wire.OfflineTargetResponse:
        self.state.require_primary()
        return await ops.offline_target(self.state, request)

    @rpc_method(wire.REMOVE_TARGET)
    async def remove_target(
        self, ctx: CallContext, request: wire.RemoveTargetRequest, payload: Buffer
    ) -> wire.RemoveTargetResponse:
        self.state.require_primary()
        return await ops.remove_target(self.state, request)

    @rpc_method(wire.UPDATE_CHAIN)
    async def update_chain(
        self, ctx: CallContext, request: wire.UpdateChainRequest, payload: Buffer
    ) -> wire.UpdateChainResponse:
        self.state.require_primary()
        return await ops.update_chain_op(self.state, request)

    @rpc_method(wire.ROTATE_LAST_SERVING)
    async def rotate_last_serving(
        self, ctx: CallContext, request: wire.RotateLastServingRequest, payload: Buffer
    ) -> wire.RotateLastServingResponse:
        self.state.require_primary()
        return await ops.rotate_last_serving_op(self.state, request)

    @rpc_method(wire.SET_PREFERRED_ORDER)
    async def set_preferred_order(
        self, ctx: CallContext, request: wire.SetPreferredOrderRequest, payload: Buffer
    ) -> wire.SetPreferredOrderResponse:
        self.state.require_primary()
        return await ops.set_preferred_order(self.state, request)

    @rpc_method(wire.LIST_CLIENT_SESSIONS)
    async def list_client_sessions(
        self, ctx: CallContext, request: wire.ListClientSessionsRequest, payload: Buffer
    ) -> wire.ListClientSessionsResponse:
        self.state.require_primary()
        return ops.list_client_sessions(self.state)

    # ---- users (docs/security.md) ---------------------------------------------------------

    @rpc_method(wire.USER_ADD)
    async def user_add(
        self, ctx: CallContext, request: wire.UserAddRequest, payload: Buffer
    ) -> wire.UserAddResponse:
        return await user_ops.user_add(self.state, self.users, request)

    @rpc_method(wire.USER_LIST)
    async def user_list(
        self, ctx: CallContext, request: wire.UserListRequest, payload: Buffer
    ) -> wire.UserListResponse:
        return await user_ops.user_list(self.state)

    @rpc_method(wire.USER_REMOVE)
    async def user_remove(
        self, ctx: CallContext, request: wire.UserRemoveRequest, payload: Buffer
    ) -> wire.UserRemoveResponse:
        return await user_ops.user_remove(self.state, self.users, request)

    @rpc_method(wire.USER_SET_TOKEN)
    async def user_set_token(
        self, ctx: CallContext, request: wire.UserSetTokenRequest, payload: Buffer
    ) -> wire.UserSetTokenResponse:
        return await user_ops.user_set_token(self.state, self.users, request)

    @rpc_method(wire.USER_KEYS)
    async def user_keys(
        self, ctx: CallContext, request: wire.UserKeysRequest, payload: Buffer
    ) -> wire.UserKeysResponse:
        return await user_ops.user_keys(self.state)

    @rpc_method(wire.USER_WHO_AM_I)
    async def user_who_am_i(
        self, ctx: CallContext, request: wire.UserWhoAmIRequest, payload: Buffer
    ) -> wire.UserWhoAmIResponse:
        self.state.require_primary()
        return await user_ops.user_who_am_i(self.state, ctx.identity)
