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

import logging
from collections import Counter
from collections.abc import Iterator

import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mgmtd.state import MgmtdState
from threefs.wire.mgmtd import LocalTargetState, NodeStatus, NodeType, PublicTargetState

__all__ = ["MgmtdMetrics"]

log = logging.getLogger("mgmtd.metrics")

_MAX_REQUEST_BYTES = 8192
_REQUEST_TIMEOUT_S = 5.0


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
        listeners = await trio.open_tcp_listeners(port, host=host)
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(_REQUEST_TIMEOUT_S):
                request = b""
                while b"\r\n\r\n" not in request and len(request) < _MAX_REQUEST_BYTES:
                    data = await stream.receive_some(4096)
                    if not data:
                        break
                    request += data
                method, _, rest = request.partition(b" ")
                path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
                if method == b"GET" and path in (b"/metrics", b"/"):
                    await _reply(stream, b"200 OK", CONTENT_TYPE_LATEST.encode(), self.render())
                else:
                    await _reply(stream, b"404 Not Found", b"text/plain", b"try GET /metrics\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.debug("metrics request failed: %s", exc)
        finally:
            await stream.aclose()


async def _reply(stream: trio.SocketStream, status: bytes, content_type: bytes, body: bytes) -> None:
    head = (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
    )
    await stream.send_all(head + body)
