"""What heartbeats tell the primary between routing changes, kept in memory only.

Every heartbeat moves a node's last-heartbeat time and sequence, and a storage node's target
usage figures; writing those to the KV engine every few seconds per node would be pure load,
so they live here and are laid over the stored structs when nodes and targets are shown.
A new primary starts with an empty table and gives every node a fresh grace period.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from threefs.wire.mgmtd import NodeInfo, RoutingInfo, TargetInfo, TargetReport

__all__ = ["HeartbeatRecord", "LiveStatus"]


@dataclass(slots=True)
class HeartbeatRecord:
    """The last accepted heartbeat of a node: mgmtd's wall time then, and the node's
    ``(started_ms, seq)`` (0, 0 when only a grace period was given)."""

    last_ms: int
    started_ms: int
    seq: int

    def accepts(self, started_ms: int, seq: int) -> bool:
        """True when ``(started_ms, seq)`` comes after the last accepted heartbeat."""
        return (started_ms, seq) > (self.started_ms, self.seq)


class LiveStatus:
    """Last heartbeats per node id and last target reports per target id."""

    def __init__(self) -> None:
        self.heartbeats: dict[int, HeartbeatRecord] = {}
        self.target_reports: dict[int, TargetReport] = {}

    def reset(self, routing: RoutingInfo, now_ms: int) -> None:
        """Forget everything and count every known node as heard from at ``now_ms`` (the grace a
        new primary gives, having no history). Sequences restart from the stored ones."""
        self.heartbeats = {
            node.node_id: HeartbeatRecord(now_ms, node.started_ms, node.heartbeat_seq)
            for node in routing.nodes.values()
        }
        self.target_reports = {}

    def last_heartbeat_ms(self, node: NodeInfo) -> int:
        record = self.heartbeats.get(node.node_id)
        return node.last_heartbeat_ms if record is None else record.last_ms

    def record_heartbeat(self, node_id: int, now_ms: int, started_ms: int, seq: int) -> None:
        """Remember an accepted heartbeat; an older one than the record (two in flight at
        once) leaves the record as it is."""
        record = self.heartbeats.get(node_id)
        if record is None:
            self.heartbeats[node_id] = HeartbeatRecord(now_ms, started_ms, seq)
        elif record.accepts(started_ms, seq):
            record.last_ms, record.started_ms, record.seq = now_ms, started_ms, seq

    def give_grace(self, node_id: int, now_ms: int) -> None:
        """Count node ``node_id`` as heard from at ``now_ms`` (e.g. just re-enabled)."""
        record = self.heartbeats.get(node_id)
        if record is None:
            self.heartbeats[node_id] = HeartbeatRecord(now_ms, 0, 0)
        else:
            record.last_ms = now_ms

    def node_view(self, node: NodeInfo) -> NodeInfo:
        """``node`` with its last heartbeat time and sequence from memory."""
        record = self.heartbeats.get(node.node_id)
        if record is None or record.seq == 0:
            return node
        return msgspec.structs.replace(
            node, last_heartbeat_ms=record.last_ms, heartbeat_seq=record.seq, started_ms=record.started_ms
        )

    def target_view(self, target: TargetInfo) -> TargetInfo:
        """``target`` with the chain version and usage of its last report."""
        report = self.target_reports.get(target.target_id)
        if report is None:
            return target
        return msgspec.structs.replace(
            target,
            chain_version_seen=report.chain_version,
            used_bytes=report.used_bytes,
            capacity_bytes=report.capacity_bytes or target.capacity_bytes,
        )

    def routing_view(self, routing: RoutingInfo) -> RoutingInfo:
        """``routing`` with every node and target shown as above (a new struct; ``routing`` is
        left as it is)."""
        return RoutingInfo(
            version=routing.version,
            cluster_id=routing.cluster_id,
            nodes={node_id: self.node_view(node) for node_id, node in routing.nodes.items()},
            chain_tables=routing.chain_tables,
            chains=routing.chains,
            targets={target_id: self.target_view(t) for target_id, t in routing.targets.items()},
        )
