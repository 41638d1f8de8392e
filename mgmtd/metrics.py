"""Prometheus metrics of one mgmtd, served over HTTP on ``metrics_port`` (GET /metrics).

Metrics (gauges unless noted), read from ``MgmtdState`` at scrape time (docs/metrics.md has
the full list with labels):

- ``threefs_mgmtd_is_primary`` 1 while this mgmtd is primary
- ``threefs_mgmtd_lease_term`` the lease term this mgmtd last saw
- ``threefs_mgmtd_heartbeats_total{result}`` counter: accepted / refused heartbeats
- ``threefs_mgmtd_build_info{version}`` 1, labelled with the running version
- primary only: ``threefs_mgmtd_routing_version``, ``threefs_mgmtd_chains``,
  ``threefs_mgmtd_chain_states{state}`` (SERVING / DEGRADED / UNAVAILABLE, as
  ``threefs admin status`` derives them), ``threefs_mgmtd_nodes{type,status}``,
  ``threefs_mgmtd_targets{public_state,local_state}``, ``threefs_mgmtd_target_capacity_bytes``
  and ``threefs_mgmtd_target_used_bytes`` (sums of the targets' last reports),
  ``threefs_mgmtd_node_heartbeat_age_seconds{node,type}`` (every node but clients)
- ``process_*`` the process's CPU, memory, open files and start time (Linux)

Each ``MgmtdMetrics`` has its own ``CollectorRegistry`` (never the global one), so many mgmtds
can run in one process. The HTTP server is a small trio task (no thread), so a scrape reads
the state from the trio thread like every other reader.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import trio
from prometheus_client import CollectorRegistry, Gauge, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import threefs
from mgmtd.state import MgmtdState
from threefs.service import serve_metrics
from threefs.wire.mgmtd import (
    ChainInfo,
    LocalTargetState,
    NodeStatus,
    NodeType,
    PublicTargetState,
    RoutingInfo,
)

__all__ = ["CHAIN_STATES", "MgmtdMetrics", "chain_state"]

CHAIN_STATES = ("SERVING", "DEGRADED", "UNAVAILABLE")


def chain_state(chain: ChainInfo) -> str:
    """SERVING (every replica SERVING), DEGRADED (some, not all) or UNAVAILABLE (none); the
    same rule as ``threefs admin status`` (client/cli/status.py)."""
    serving = sum(1 for replica in chain.targets if replica.public_state == PublicTargetState.SERVING)
    if serving and serving == len(chain.targets):
        return "SERVING"
    return "DEGRADED" if serving else "UNAVAILABLE"


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
        yield from self._derived(routing)

    def _derived(self, routing: RoutingInfo) -> Iterator[Metric]:
        """Figures an operator alerts on: chain states, capacity, heartbeat ages."""
        state = self.state
        chain_states = GaugeMetricFamily(
            "threefs_mgmtd_chain_states",
            "Chains by state: SERVING (all replicas), DEGRADED (some), UNAVAILABLE (none serving)",
            labels=["state"],
        )
        chain_counts = Counter(chain_state(chain) for chain in routing.chains.values())
        for name in CHAIN_STATES:
            chain_states.add_metric([name], chain_counts[name])
        yield chain_states
        views = [state.live.target_view(target) for target in routing.targets.values()]
        yield GaugeMetricFamily(
            "threefs_mgmtd_target_capacity_bytes",
            "Sum of the targets' capacities as last reported (each reports its file system's size)",
            sum(view.capacity_bytes for view in views),
        )
        yield GaugeMetricFamily(
            "threefs_mgmtd_target_used_bytes",
            "Sum of the chunk bytes the targets last reported",
            sum(view.used_bytes for view in views),
        )
        ages = GaugeMetricFamily(
            "threefs_mgmtd_node_heartbeat_age_seconds",
            "Seconds since the node's last accepted heartbeat (clients left out)",
            labels=["node", "type"],
        )
        now_ms = state.now_ms()
        for node in routing.nodes.values():
            if node.node_type == NodeType.CLIENT:
                continue
            last_ms = state.live.last_heartbeat_ms(node)
            if last_ms:
                ages.add_metric([str(node.node_id), node.node_type.name], max(now_ms - last_ms, 0) / 1000)
        yield ages


class MgmtdMetrics:
    """The registry of one mgmtd and its HTTP endpoint."""

    def __init__(self, state: MgmtdState) -> None:
        registry = self.registry = CollectorRegistry(auto_describe=False)
        registry.register(_StateCollector(state))
        Gauge(
            "threefs_mgmtd_build_info", "1, labelled with the version running", ["version"], registry=registry
        ).labels(threefs.__version__).set(1)
        ProcessCollector(registry=registry)

    def render(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve ``GET /metrics`` on ``host:port`` until cancelled; reports the bound port."""
        await serve_metrics(self.registry, host, port, task_status=task_status)
