"""mgmtd operations: one function per RPC method, called by the thin handlers of
``mgmtd.service``. Each validates its input, changes routing info through
``MgmtdState.mutate`` (all or nothing) and builds the response."""

from mgmtd.ops.chain_tables import create_chain_table, generate_chain_table, list_chain_tables
from mgmtd.ops.chains import (
    create_chains,
    list_chains,
    rotate_last_serving_op,
    set_preferred_order,
    update_chain_op,
)
from mgmtd.ops.heartbeat import heartbeat
from mgmtd.ops.nodes import list_client_sessions, list_nodes, set_node_enabled
from mgmtd.ops.routing import get_primary, get_routing_info
from mgmtd.ops.targets import create_targets, list_targets, offline_target, remove_target

__all__ = [
    "create_chain_table",
    "create_chains",
    "create_targets",
    "generate_chain_table",
    "get_primary",
    "get_routing_info",
    "heartbeat",
    "list_chain_tables",
    "list_chains",
    "list_client_sessions",
    "list_nodes",
    "list_targets",
    "offline_target",
    "remove_target",
    "rotate_last_serving_op",
    "set_node_enabled",
    "set_preferred_order",
    "update_chain_op",
]
