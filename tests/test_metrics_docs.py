"""docs/metrics.md stays true: every metric family each service's registry exposes is listed in
that service's section (or under "Every service") with the same type and labels, and every
listed metric is exposed. The example Grafana dashboard is valid JSON naming only documented
metrics. Also the values of mgmtd's derived gauges (chain states, capacity, heartbeat ages)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TypeVar

import pytest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

import threefs
from meta.metrics import MetaMetrics
from mgmtd.config import MgmtdConfig
from mgmtd.metrics import MgmtdMetrics
from mgmtd.state import MgmtdState
from mgmtd.store import LeaseRecord
from storage.metrics import StorageMetrics
from threefs.kv import open_engine
from threefs.wire import mgmtd as wire
from threefs.wire.mgmtd import ChainTarget, LocalTargetState, NodeStatus, NodeType, PublicTargetState

M = TypeVar("M")
ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "metrics.md"
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
NOW_MS = 1_000_000
SERVING, OFFLINE, LASTSRV = PublicTargetState.SERVING, PublicTargetState.OFFLINE, PublicTargetState.LASTSRV

# A documented row: | `name` | type | labels | meaning |
_ROW = re.compile(r"^\| `([a-z_:]+)` \| (counter|gauge|histogram) \|([^|]*)\|", re.MULTILINE)
_TYPE_LINE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)


def documented() -> dict[str, dict[str, tuple[str, frozenset[str]]]]:
    """Section ("every", "mgmtd", "meta", "storage") -> metric name -> (type, labels)."""
    sections: dict[str, dict[str, tuple[str, frozenset[str]]]] = {}
    for chunk in DOCS.read_text().split("\n## ")[1:]:
        heading, _, body = chunk.partition("\n")
        key = heading.split()[0].lower()
        rows = {
            name: (kind, frozenset(re.findall(r"`([a-z_]+)`", labels)))
            for name, kind, labels in _ROW.findall(body)
        }
        if rows:
            sections[key] = rows
    return sections


def routing() -> wire.RoutingInfo:
    """Storage 11 ACTIVE (heard 2.5 s ago), 12 FAILED (heard 9 s ago), a client; chain 1
    SERVING, chain 2 DEGRADED, chain 3 UNAVAILABLE."""
    nodes = {
        11: wire.NodeInfo(node_id=11, node_type=NodeType.STORAGE, last_heartbeat_ms=NOW_MS - 2500),
        12: wire.NodeInfo(
            node_id=12, node_type=NodeType.STORAGE, status=NodeStatus.FAILED, last_heartbeat_ms=NOW_MS - 9000
        ),
        90: wire.NodeInfo(node_id=90, node_type=NodeType.CLIENT, last_heartbeat_ms=NOW_MS - 1000),
    }
    targets = {
        t: wire.TargetInfo(target_id=t, node_id=t // 100, used_bytes=t, capacity_bytes=1000)
        for t in (1101, 1102, 1103, 1201, 1202, 1203)
    }
    chains = {
        1: wire.ChainInfo(chain_id=1, targets=[ChainTarget(1101, SERVING)]),
        2: wire.ChainInfo(chain_id=2, targets=[ChainTarget(1102, SERVING), ChainTarget(1202, OFFLINE)]),
        3: wire.ChainInfo(chain_id=3, targets=[ChainTarget(1203, LASTSRV), ChainTarget(1103, OFFLINE)]),
    }
    return wire.RoutingInfo(version=7, cluster_id="docs", nodes=nodes, chains=chains, targets=targets)


def primary_mgmtd_metrics() -> MgmtdMetrics:
    """The metrics of a mgmtd made primary over ``routing()`` without any I/O."""
    state = MgmtdState(MgmtdConfig(), open_engine("mem://"), now_ms=lambda: NOW_MS)
    lease = LeaseRecord(
        holder_node_id=1,
        holder_address="m:1",
        holder_instance=state.instance,
        term=3,
        expires_ms=NOW_MS + 10_000,
        acquired_ms=NOW_MS,
    )
    state.become_primary(lease, routing())
    # Heartbeats since the takeover: live figures are laid over the stored ones.
    state.live.record_heartbeat(11, NOW_MS - 2500, 1, 5)
    state.live.target_reports[1101] = wire.TargetReport(
        target_id=1101, local_state=LocalTargetState.UPTODATE, used_bytes=5000, capacity_bytes=8000
    )
    return MgmtdMetrics(state)


def with_every_label_set(metrics: M) -> M:
    """Give each labelled metric of ``metrics`` one child, so its family has samples (and so
    label names) to compare with the docs."""
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase) and metric._labelnames:
            metric.labels(*["x"] * len(metric._labelnames))
    return metrics


def exposed(rendered: bytes) -> dict[str, tuple[str, frozenset[str]]]:
    """Metric name as exposed (counters with ``_total``) -> (type, label names), leaving out the
    ``_created`` companions of counters and histograms."""
    text = rendered.decode()
    types = dict(_TYPE_LINE.findall(text))
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        name = family.name + "_total" if family.type == "counter" else family.name
        found = labels.setdefault(name, set())
        for sample in family.samples:
            found |= set(sample.labels) - {"le"}
    result = {}
    for name, kind in types.items():
        base = name.removesuffix("_created")
        if name.endswith("_created") and (
            types.get(base + "_total") == "counter" or types.get(base) == "histogram"
        ):
            continue
        result[name] = (kind, frozenset(labels.get(name, set())))
    return result


SERVICES = {
    "mgmtd": lambda: primary_mgmtd_metrics().render(),
    "meta": lambda: with_every_label_set(MetaMetrics()).render(),
    "storage": lambda: with_every_label_set(
        StorageMetrics(lambda: [(101, LocalTargetState.UPTODATE, 10, 100, 1)])
    ).render(),
}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_exposed_metric_is_documented_and_vice_versa(service):
    docs = documented()
    assert set(docs) == {"every", "mgmtd", "meta", "storage"}, "docs/metrics.md sections changed"
    expected = {**docs["every"], **docs[service]}
    actual = exposed(SERVICES[service]())
    if not sys.platform.startswith("linux"):  # process_* come from /proc
        expected = {name: value for name, value in expected.items() if not name.startswith("process_")}
    missing = sorted(set(actual) - set(expected))
    stale = sorted(set(expected) - set(actual))
    assert not missing, f"exposed by {service} but not in docs/metrics.md: {missing}"
    assert not stale, f"in docs/metrics.md but not exposed by {service}: {stale}"
    for name, (kind, labels) in actual.items():
        assert expected[name] == (kind, labels), (
            f"{name}: docs say {expected[name]}, exposed {kind, set(labels)}"
        )


def test_the_enabling_key_is_documented():
    text = DOCS.read_text()
    assert "| `metrics_port` | `-1` |" in text and '| `metrics_host` | `""` |' in text


def test_mgmtd_derived_gauges():
    families = {f.name: f for f in text_string_to_metric_families(primary_mgmtd_metrics().render().decode())}

    def values(name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {tuple(sorted(s.labels.items())): s.value for s in families[name].samples}

    assert values("threefs_mgmtd_chain_states") == {
        (("state", "SERVING"),): 1,
        (("state", "DEGRADED"),): 1,
        (("state", "UNAVAILABLE"),): 1,
    }
    # 1101 reported 5000 of 8000 since the takeover; the others keep their stored figures.
    stored = [1102, 1103, 1201, 1202, 1203]
    assert values("threefs_mgmtd_target_capacity_bytes") == {(): 8000 + 5 * 1000}
    assert values("threefs_mgmtd_target_used_bytes") == {(): 5000 + sum(stored)}
    # A new primary counts every node as heard from at the takeover; node 11 has been heard since.
    assert values("threefs_mgmtd_node_heartbeat_age_seconds") == {
        (("node", "11"), ("type", "STORAGE")): 2.5,
        (("node", "12"), ("type", "STORAGE")): 0.0,
    }
    assert values("threefs_mgmtd_build_info") == {(("version", threefs.__version__),): 1}


# ----------------------------------------------------------------------------- the dashboard


def _expressions(node: object) -> list[str]:
    """Every ``expr`` string anywhere in the dashboard."""
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for value in node.values() for e in _expressions(value)]
    if isinstance(node, list):
        return [e for value in node for e in _expressions(value)]
    return []


def test_grafana_dashboard_is_valid_and_uses_documented_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["panels"]
    names = {name for section in documented().values() for name in section}
    histograms = {
        name
        for section in documented().values()
        for name, (kind, _) in section.items()
        if kind == "histogram"
    }
    allowed = names | {f"{h}_{suffix}" for h in histograms for suffix in ("bucket", "sum", "count")}
    expressions = _expressions(dashboard)
    assert len(expressions) >= 8
    used: set[str] = set()
    for expr in expressions:
        for token in re.findall(r"\b(?:threefs|process)_[a-z_]+", expr):
            assert token in allowed, f"dashboard query {expr!r} names {token}, not in docs/metrics.md"
            used.add(token)
    for service in ("mgmtd", "meta", "storage"):
        assert any(f"threefs_{service}_" in name for name in used), f"no panel for {service}"
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for topic in ("latency", "chain", "target", "capacity", "gc"):
        assert topic in titles, f"no panel about {topic}"
