"""Prometheus metrics of one mgmtd, served over HTTP on ``metrics_port`` (GET /metrics).

Metrics (gauges unless noted), read from ``MgmtdState`` at scrape time:

- ``threefs_mgmtd_is_primary`` 1 while this mgmtd is primary
- ``threefs_mgmtd_lease_term`` the lease term this mgmtd last saw
- ``threefs_mgmtd_routing_version`` (primary only)
- ``threefs_mgmtd_nodes{type,status}`` registered nodes (primary only)
- ``threefs_mgmtd_targets{public_state,local_state}`` targets (primary only)
- ``threefs_mgmtd_chains`` chains (primary only)
- ``threefs_mgmtd_heartbeats_total{result}`` counter: accepted / refused heartbeats

Each ``MgmtdMetrics`` has its own ``CollectorRegistry`` (never the global one), so many mgmtds
can run in one process. The HTTP server is a small trio task (no thread), so a scrape reads
the state from the trio thread like every other reader.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mgmtd.state import MgmtdState
from threefs.service import serve_metrics
from threefs.wire.mgmtd import LocalTargetState, NodeStatus, NodeType, PublicTargetState

__all__ = ["MgmtdMetrics"]


class _StateCollector(Collector):
    def __init__(self, state: MgmtdState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        state = self.state
        yield GaugeMetricFamily(
            "threefs_mgmtd_is_primary", "1 while this mgmtd is primary", int(state.is_primary)
        )
        yield GaugeMetricFamily(
            "threefs_mgmtd_lease_term",
            "The primary lease term last seen",
            state.lease.term if state.lease else 0,
        )
        heartbeats = CounterMetricFamily("threefs_mgmtd_heartbeats", "Heartbeats handled", labels=["result"])
        heartbeats.add_metric(["accepted"], state.heartbeats_accepted)
        heartbeats.add_metric(["refused"], state.heartbeats_refused)
        yield heartbeats
        routing = state.routing
        if routing is None:
            return
        yield GaugeMetricFamily("threefs_mgmtd_routing_version", "The routing info version", routing.version)
        yield GaugeMetricFamily("threefs_mgmtd_chains", "Chains", len(routing.chains))
        nodes = GaugeMetricFamily("threefs_mgmtd_nodes", "Registered nodes", labels=["type", "status"])
        node_counts = Counter((node.node_type, node.status) for node in routing.nodes.values())
        for node_type in NodeType:
            for status in NodeStatus:
                nodes.add_metric([node_type.name, status.name], node_counts[(node_type, status)])
        yield nodes
        targets = GaugeMetricFamily(
            "threefs_mgmtd_targets", "Targets", labels=["public_state", "local_state"]
        )
        target_counts = Counter((t.public_state, t.local_state) for t in routing.targets.values())
        for public_state in PublicTargetState:
            for local_state in LocalTargetState:
                targets.add_metric(
                    [public_state.name, local_state.name], target_counts[(public_state, local_state)]
                )
        yield targets


class MgmtdMetrics:
    """The registry of one mgmtd and its HTTP endpoint."""

    def __init__(self, state: MgmtdState) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_StateCollector(state))

    def render(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve ``GET /metrics`` on ``host:port`` until cancelled; reports the bound port."""
        await serve_metrics(self.registry, host, port, task_status=task_status)
