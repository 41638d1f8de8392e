"""Routing info in the KV engine: round trip on mem and sqlite, and fenced writes."""

from __future__ import annotations

import pytest

from mgmtd.store import (
    ClusterRecord,
    LeaseRecord,
    RoutingChanges,
    commit_changes,
    ensure_cluster,
    load_routing,
    read_routing_version,
    write_lease,
)
from threefs.errors import Code, ThreeFSError
from threefs.kv import open_engine, run_transaction
from threefs.wire.mgmtd import (
    ChainInfo,
    ChainTable,
    ChainTarget,
    NodeInfo,
    NodeType,
    PublicTargetState,
    TargetInfo,
)

LEASE = LeaseRecord(
    holder_node_id=1, holder_address="h:1", holder_instance="me", term=3, expires_ms=10_000, acquired_ms=0
)


def changes(base_version: int = 0) -> RoutingChanges:
    return RoutingChanges(
        base_version=base_version,
        nodes=[NodeInfo(node_id=2, node_type=NodeType.STORAGE, addresses=["h:2"])],
        targets=[TargetInfo(target_id=20, node_id=2, chain_id=5), TargetInfo(target_id=21, node_id=2)],
        chains=[ChainInfo(chain_id=5, targets=[ChainTarget(20, PublicTargetState.SERVING)], created_ms=7)],
        tables=[ChainTable(table_id=1, version=v, chain_ids=[5]) for v in (1, 2)],
    )


@pytest.fixture(params=["mem", "sqlite"])
def kv(request, tmp_path):
    engine = open_engine("mem://" if request.param == "mem" else f"sqlite:///{tmp_path}/mgmtd.db")
    run_transaction(engine, lambda txn: write_lease(txn, LEASE))
    yield engine
    engine.close()


def commit(engine, routing_changes, *, instance="me", term=3, now_ms=5_000):
    return run_transaction(
        engine,
        lambda txn: commit_changes(txn, routing_changes, holder_instance=instance, term=term, now_ms=now_ms),
    )


def load(engine):
    return run_transaction(engine, lambda txn: load_routing(txn, "c"), read_only=True)


def test_round_trip(kv):
    assert commit(kv, changes()) == 1
    routing = load(kv)
    assert routing.version == 1 and routing.cluster_id == "c"
    assert routing.nodes[2].addresses == ["h:2"]
    assert sorted(routing.targets) == [20, 21] and routing.targets[20].chain_id == 5
    assert routing.chains[5].targets == [ChainTarget(20, PublicTargetState.SERVING)]
    assert [t.version for t in routing.chain_tables[1]] == [1, 2]
    assert commit(kv, RoutingChanges(base_version=1, removed_targets=[21])) == 2
    assert sorted(load(kv).targets) == [20]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"instance": "someone-else"}, "held by mgmtd 1 (term 3)"),
        ({"term": 2}, "held by mgmtd 1 (term 3)"),
        ({"now_ms": 10_000}, "expired 0 ms ago"),
    ],
)
def test_a_write_without_the_lease_changes_nothing(kv, kwargs, words):
    with pytest.raises(ThreeFSError) as caught:
        commit(kv, changes(), **kwargs)
    assert caught.value.code == Code.MGMTD_LEASE_LOST
    assert words in caught.value.message
    assert load(kv).nodes == {} and run_transaction(kv, read_routing_version) == 0


def test_a_write_from_a_stale_version_changes_nothing(kv):
    commit(kv, changes())
    with pytest.raises(ThreeFSError) as caught:
        commit(kv, RoutingChanges(base_version=0, removed_targets=[20]))
    assert caught.value.code == Code.MGMTD_LEASE_LOST and "another mgmtd" in caught.value.message
    assert sorted(load(kv).targets) == [20, 21]


def test_the_cluster_record(kv):
    record = run_transaction(kv, lambda txn: ensure_cluster(txn, "c", 123))
    assert record == ClusterRecord(cluster_id="c", created_ms=123)
    assert run_transaction(kv, lambda txn: ensure_cluster(txn, "c", 999)).created_ms == 123
    with pytest.raises(ThreeFSError) as caught:
        run_transaction(kv, lambda txn: ensure_cluster(txn, "other", 999))
    assert caught.value.code == Code.CONFIG_INVALID and "belongs to cluster 'c'" in caught.value.message
