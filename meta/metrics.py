"""Prometheus metrics of one meta server, served over HTTP on ``metrics_port`` (GET /metrics).

Each ``MetaMetrics`` has its own ``CollectorRegistry`` (never the global one), so several meta
servers can run in one process. Metrics:

- ``threefs_meta_requests_total{method,result}`` RPCs handled (result: ok or the error name)
- ``threefs_meta_request_seconds{method}`` histogram of handler latency
- ``threefs_meta_gc_jobs_total{result}`` GC jobs finished (done) or failed (retried later)
- ``threefs_meta_gc_chunks_removed_total`` chunks the GC worker removed from storage
- ``threefs_meta_sessions_pruned_total`` write sessions of dead clients pruned
- ``threefs_meta_lengths_fixed_total`` file lengths recomputed from storage
- ``threefs_meta_build_info{version}`` 1, labelled with the running version
- ``process_*`` the process's CPU, memory, open files and start time (Linux)

docs/metrics.md lists every metric with its type, labels and meaning.
"""

from __future__ import annotations

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

import threefs
from threefs.service import serve_metrics

__all__ = ["MetaMetrics"]

_LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class MetaMetrics:
    """The registry of one meta server and its HTTP endpoint."""

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "threefs_meta_requests", "RPCs handled", ["method", "result"], registry=registry
        )
        self.request_seconds = Histogram(
            "threefs_meta_request_seconds",
            "RPC handler latency",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.gc_jobs = Counter("threefs_meta_gc_jobs", "GC jobs handled", ["result"], registry=registry)
        self.gc_chunks_removed = Counter(
            "threefs_meta_gc_chunks_removed", "Chunks removed from storage by GC", registry=registry
        )
        self.sessions_pruned = Counter(
            "threefs_meta_sessions_pruned", "Write sessions of dead clients pruned", registry=registry
        )
        self.lengths_fixed = Counter(
            "threefs_meta_lengths_fixed", "File lengths recomputed from storage", registry=registry
        )
        Gauge(
            "threefs_meta_build_info", "1, labelled with the version running", ["version"], registry=registry
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
