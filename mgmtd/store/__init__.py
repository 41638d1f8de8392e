"""Persistence of mgmtd's state in the KV engine: routing info (nodes, targets, chains, chain
tables, routing version, cluster record) and the primary lease row, with fenced writes."""

from mgmtd.store.lease_store import LeaseLost, LeaseRecord, check_fence, read_lease, write_lease
from mgmtd.store.routing_store import (
    FORMAT_VERSION,
    ClusterRecord,
    RoutingChanges,
    commit_changes,
    ensure_cluster,
    load_routing,
    read_cluster,
    read_routing_version,
)

__all__ = [
    "FORMAT_VERSION",
    "ClusterRecord",
    "LeaseLost",
    "LeaseRecord",
    "RoutingChanges",
    "check_fence",
    "commit_changes",
    "ensure_cluster",
    "load_routing",
    "read_cluster",
    "read_lease",
    "read_routing_version",
    "write_lease",
]
