"""Routing info in the KV engine: one key per node, target, chain and chain-table version.

Layout (``threefs.kv.keys``): ``NODE``+id -> NodeInfo, ``TGT_``+id -> TargetInfo, ``CHAN``+id ->
ChainInfo, ``CTBL``+id+version -> ChainTable, all msgpack of the wire structs;
``CONF mgmtd.routing_version`` -> the routing version (u64 BE); ``CLUS`` -> ClusterRecord.
Writes go through ``commit_changes``, which checks the lease fence and the routing version in
the same transaction, so only the current primary's changes land, each exactly once.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import msgspec

from mgmtd.store.lease_store import LeaseLost, check_fence
from threefs.errors import Code, ThreeFSError
from threefs.kv import Transaction, prefix_range
from threefs.kv.keys import (
    CLUSTER_KEY,
    Prefix,
    chain_key,
    chain_table_key,
    config_key,
    node_key,
    target_key,
)
from threefs.wire.mgmtd import ChainInfo, ChainTable, NodeInfo, RoutingInfo, TargetInfo

__all__ = [
    "FORMAT_VERSION",
    "ClusterRecord",
    "RoutingChanges",
    "commit_changes",
    "ensure_cluster",
    "load_routing",
    "read_cluster",
    "read_routing_version",
]

FORMAT_VERSION = 1  # of the keys and values above; a reader refuses a newer one
_VERSION_KEY = config_key("mgmtd.routing_version")
_ENCODER = msgspec.msgpack.Encoder()


class ClusterRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The ``CLUS`` row: which cluster this KV store belongs to, and its format version."""

    cluster_id: str
    format_version: int = FORMAT_VERSION
    created_ms: int = 0


@dataclass
class RoutingChanges:
    """What one routing change writes: structs to put, target ids to delete. ``base_version`` is
    the routing version the change was computed from; it commits as ``base_version + 1``."""

    base_version: int
    nodes: list[NodeInfo] = field(default_factory=list)
    targets: list[TargetInfo] = field(default_factory=list)
    removed_targets: list[int] = field(default_factory=list)
    chains: list[ChainInfo] = field(default_factory=list)
    tables: list[ChainTable] = field(default_factory=list)


def _decode(raw: bytes, kind: type[Any], key: bytes) -> Any:
    try:
        return msgspec.msgpack.decode(raw, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ThreeFSError(
            Code.INTERNAL, f"stored {kind.__name__} under {key!r} does not decode: {exc}"
        ) from exc


def read_cluster(txn: Transaction) -> ClusterRecord | None:
    raw = txn.get(CLUSTER_KEY)
    return None if raw is None else _decode(raw, ClusterRecord, CLUSTER_KEY)


def ensure_cluster(txn: Transaction, cluster_id: str, now_ms: int) -> ClusterRecord:
    """The cluster record, written first if absent. Raises ``CONFIG_INVALID`` when the store
    belongs to another cluster id and ``INTERNAL`` when its format is newer than this code."""
    record = read_cluster(txn)
    if record is None:
        record = ClusterRecord(cluster_id=cluster_id, created_ms=now_ms)
        txn.set(CLUSTER_KEY, _ENCODER.encode(record))
        return record
    if record.cluster_id != cluster_id:
        raise ThreeFSError(
            Code.CONFIG_INVALID,
            f"the KV store belongs to cluster {record.cluster_id!r}, not {cluster_id!r} (key 'cluster_id')",
        )
    if record.format_version > FORMAT_VERSION:
        raise ThreeFSError(
            Code.INTERNAL,
            f"the KV store has mgmtd format {record.format_version}; this mgmtd reads up to {FORMAT_VERSION}",
        )
    return record


def read_routing_version(txn: Transaction) -> int:
    raw = txn.get(_VERSION_KEY)
    return 0 if raw is None else struct.unpack(">Q", raw)[0]


def _load_table(txn: Transaction, prefix: Prefix, kind: type[Any]) -> list[Any]:
    begin, end = prefix_range(prefix.value)
    return [_decode(value, kind, key) for key, value in txn.get_range(begin, end)]


def load_routing(txn: Transaction, cluster_id: str) -> RoutingInfo:
    """The whole routing info as stored (version 0 and empty for a new cluster)."""
    routing = RoutingInfo(version=read_routing_version(txn), cluster_id=cluster_id)
    routing.nodes = {node.node_id: node for node in _load_table(txn, Prefix.NODE, NodeInfo)}
    routing.targets = {target.target_id: target for target in _load_table(txn, Prefix.TARGET, TargetInfo)}
    routing.chains = {chain.chain_id: chain for chain in _load_table(txn, Prefix.CHAIN, ChainInfo)}
    for table in _load_table(txn, Prefix.CHAIN_TABLE, ChainTable):  # key order: id, then version
        routing.chain_tables.setdefault(table.table_id, []).append(table)
    return routing


def commit_changes(
    txn: Transaction, changes: RoutingChanges, *, holder_instance: str, term: int, now_ms: int
) -> int:
    """Write ``changes`` and the new routing version; returns that version.

    Raises ``MGMTD_LEASE_LOST`` (nothing written) when this process no longer holds lease term
    ``term`` or when the stored routing version is not ``changes.base_version`` (another mgmtd
    wrote since this one loaded the routing info).
    """
    check_fence(txn, holder_instance, term, now_ms)
    stored = read_routing_version(txn)
    if stored != changes.base_version:
        raise LeaseLost(
            f"the stored routing version is {stored}, not {changes.base_version}: another mgmtd changed it"
        )
    for node in changes.nodes:
        txn.set(node_key(node.node_id), _ENCODER.encode(node))
    for target in changes.targets:
        txn.set(target_key(target.target_id), _ENCODER.encode(target))
    for target_id in changes.removed_targets:
        txn.clear(target_key(target_id))
    for chain in changes.chains:
        txn.set(chain_key(chain.chain_id), _ENCODER.encode(chain))
    for table in changes.tables:
        txn.set(chain_table_key(table.table_id, table.version), _ENCODER.encode(table))
    version = changes.base_version + 1
    txn.set(_VERSION_KEY, struct.pack(">Q", version))
    return version
