"""Prometheus metrics of one storage node, served over HTTP on ``metrics_port`` (GET /metrics).

Each ``StorageMetrics`` has its own ``CollectorRegistry`` (never the global one), so several
storage nodes can run in one process (the tests do). Metrics (``target`` labels are target ids):

- ``threefs_storage_requests_total{method,result}`` RPCs handled (result: ok or the error name)
- ``threefs_storage_request_seconds{method}`` histogram of handler latency
- ``threefs_storage_read_bytes_total{target}`` / ``threefs_storage_read_ops_total{target}``
- ``threefs_storage_write_bytes_total{target}`` / ``threefs_storage_write_ops_total{target}``
  updates applied (at every hop; REPLACE counts the whole chunk)
- ``threefs_storage_chunk_lock_waits_total`` / ``threefs_storage_chunk_lock_wait_seconds``
- ``threefs_storage_forward_retries_total`` forwards to a successor tried again
- ``threefs_storage_resync_chunks_to_sync{target}`` / ``threefs_storage_resync_chunks_synced{target}``
  progress of the sync this node runs for its successor ``target``
- ``threefs_storage_resyncs_total{result}`` syncs finished (done / failed / aborted)
- ``threefs_storage_target_local_state{target,state}`` 1 for the state each target reports
- ``threefs_storage_target_used_bytes{target}``, ``..._capacity_bytes``, ``..._chunks`` as of the
  last heartbeat
- ``threefs_storage_build_info{version}`` 1, labelled with the running version
- ``process_*`` the process's CPU, memory, open files and start time (Linux)

docs/metrics.md lists every metric with its type, labels and meaning.

The HTTP server is a small trio task (no thread), like mgmtd's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import trio
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import threefs
from threefs.service import serve_metrics
from threefs.wire.mgmtd import LocalTargetState

__all__ = ["StorageMetrics", "TargetSample"]


_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# (target id, local state, used bytes, capacity bytes, chunk count)
TargetSample = tuple[int, LocalTargetState, int, int, int]


class _TargetCollector(Collector):
    def __init__(self, sample: Callable[[], Iterable[TargetSample]]) -> None:
        self.sample = sample

    def collect(self) -> Iterator[Metric]:
        states = GaugeMetricFamily(
            "threefs_storage_target_local_state",
            "Local state each target reports",
            labels=["target", "state"],
        )
        used = GaugeMetricFamily("threefs_storage_target_used_bytes", "Chunk bytes held", labels=["target"])
        capacity = GaugeMetricFamily(
            "threefs_storage_target_capacity_bytes", "Capacity of the target's disk", labels=["target"]
        )
        chunks = GaugeMetricFamily("threefs_storage_target_chunks", "Chunks held", labels=["target"])
        for target_id, local_state, used_bytes, capacity_bytes, chunk_count in self.sample():
            for state in LocalTargetState:
                states.add_metric([str(target_id), state.name], int(state == local_state))
            used.add_metric([str(target_id)], used_bytes)
            capacity.add_metric([str(target_id)], capacity_bytes)
            chunks.add_metric([str(target_id)], chunk_count)
        yield from (states, used, capacity, chunks)


class StorageMetrics:
    """The registry of one storage node and its HTTP endpoint. ``sample_targets`` is called at
    scrape time for the per-target gauges."""

    def __init__(self, sample_targets: Callable[[], Iterable[TargetSample]] = tuple) -> None:
        registry = self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "threefs_storage_requests", "RPCs handled", ["method", "result"], registry=registry
        )
        self.request_seconds = Histogram(
            "threefs_storage_request_seconds",
            "RPC handler latency",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.read_bytes = Counter("threefs_storage_read_bytes", "Bytes read", ["target"], registry=registry)
        self.read_ops = Counter("threefs_storage_read_ops", "Chunk reads", ["target"], registry=registry)
        self.write_bytes = Counter(
            "threefs_storage_write_bytes", "Bytes of updates applied", ["target"], registry=registry
        )
        self.write_ops = Counter(
            "threefs_storage_write_ops", "Updates applied", ["target"], registry=registry
        )
        self.lock_waits = Counter(
            "threefs_storage_chunk_lock_waits", "Chunk lock acquisitions that waited", registry=registry
        )
        self.lock_wait_seconds = Histogram(
            "threefs_storage_chunk_lock_wait_seconds",
            "Time spent waiting for a chunk lock",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.forward_retries = Counter(
            "threefs_storage_forward_retries", "Forwards to a successor tried again", registry=registry
        )
        self.resync_to_sync = Gauge(
            "threefs_storage_resync_chunks_to_sync",
            "Chunks the running sync of a successor compares",
            ["target"],
            registry=registry,
        )
        self.resync_synced = Gauge(
            "threefs_storage_resync_chunks_synced",
            "Chunks the running sync of a successor has handled",
            ["target"],
            registry=registry,
        )
        self.resyncs = Counter(
            "threefs_storage_resyncs", "Syncs of successors", ["result"], registry=registry
        )
        registry.register(_TargetCollector(sample_targets))
        Gauge(
            "threefs_storage_build_info",
            "1, labelled with the version running",
            ["version"],
            registry=registry,
        ).labels(threefs.__version__).set(1)
        ProcessCollector(registry=registry)

    def lock_waited(self, seconds: float) -> None:
        self.lock_waits.inc()
        self.lock_wait_seconds.observe(seconds)

    def render(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve ``GET /metrics`` on ``host:port`` until cancelled; reports the bound port."""
        await serve_metrics(self.registry, host, port, task_status=task_status)
