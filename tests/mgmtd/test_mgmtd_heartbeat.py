"""Heartbeats: registration, refresh without KV writes, target reports, and every refusal."""

from __future__ import annotations

import pytest
from mgmtd_helpers import BASE_MS, FakeNode

from mgmtd import ops
from mgmtd.store import load_routing
from threefs.errors import Code, ThreeFSError
from threefs.kv import run_transaction
from threefs.wire.mgmtd import (
    CreateTargetsRequest,
    LocalTargetState,
    NodeStatus,
    NodeType,
    SetNodeEnabledRequest,
    TargetInfo,
    TargetReport,
)

UPTODATE, ONLINE, OFFLINE = LocalTargetState.UPTODATE, LocalTargetState.ONLINE, LocalTargetState.OFFLINE


def stored(engine):
    return run_transaction(engine, lambda txn: load_routing(txn, "test-cluster"), read_only=True)


async def test_first_heartbeat_registers_the_node_and_persists_it(mgmtd, engine, mock_clock):
    node = FakeNode(5, NodeType.META)
    response = await ops.heartbeat(mgmtd.state, node.heartbeat(version="1.2"))
    assert response.routing_version == 1
    assert response.heartbeat_interval_ms == 1000
    registered = stored(engine).nodes[5]
    assert (registered.node_type, registered.status, registered.version) == (
        NodeType.META,
        NodeStatus.ACTIVE,
        "1.2",
    )
    assert registered.hostname == "host5" and registered.addresses == ["127.0.0.1:7005"]
    assert stored(engine).version == 1


async def test_a_routine_heartbeat_changes_no_routing_and_writes_nothing(mgmtd, engine, mock_clock):
    node = FakeNode(5, NodeType.META)
    await ops.heartbeat(mgmtd.state, node.heartbeat())
    mock_clock.jump(2)
    response = await ops.heartbeat(mgmtd.state, node.heartbeat())
    assert response.routing_version == 1 == stored(engine).version
    assert stored(engine).nodes[5].heartbeat_seq == 1  # the KV copy is as registered
    shown = ops.list_nodes(mgmtd.state).nodes[0]  # the live view has the last heartbeat
    assert shown.heartbeat_seq == 2 and shown.last_heartbeat_ms == BASE_MS + 2000


async def test_storage_reports_set_local_states_and_usage(mgmtd, engine, mock_clock):
    await ops.create_targets(
        mgmtd.state, CreateTargetsRequest(targets=[TargetInfo(target_id=t, node_id=1) for t in (101, 102)])
    )
    node = FakeNode(1)
    node.targets = {101: UPTODATE, 102: ONLINE}
    version = (await ops.heartbeat(mgmtd.state, node.heartbeat())).routing_version
    targets = stored(engine).targets
    assert (targets[101].local_state, targets[102].local_state) == (UPTODATE, ONLINE)
    # Usage moves in memory only; a target no longer reported counts as OFFLINE (a change).
    node.targets = {101: UPTODATE}
    version_after = (await ops.heartbeat(mgmtd.state, node.heartbeat())).routing_version
    assert version_after == version + 1
    assert stored(engine).targets[102].local_state == OFFLINE
    listed = {t.target_id: t for t in ops.list_targets(mgmtd.state).targets}
    assert listed[101].used_bytes == 1010 and listed[101].capacity_bytes == 1000


async def test_unknown_reported_targets_are_ignored(mgmtd, engine, mock_clock):
    node = FakeNode(1)
    node.targets = {999: ONLINE}
    await ops.heartbeat(mgmtd.state, node.heartbeat())
    assert 999 not in stored(engine).targets


async def test_a_restarted_node_is_accepted_with_a_new_start_time(mgmtd, mock_clock):
    node = FakeNode(3, NodeType.CLIENT)
    for _ in range(3):
        await ops.heartbeat(mgmtd.state, node.heartbeat())
    node.restart()
    await ops.heartbeat(mgmtd.state, node.heartbeat())
    assert ops.list_client_sessions(mgmtd.state).sessions[0].node_id == 3


async def refused(mgmtd, request, *words: str) -> None:
    version = mgmtd.version
    with pytest.raises(ThreeFSError) as caught:
        await ops.heartbeat(mgmtd.state, request)
    assert caught.value.code == Code.MGMTD_BAD_HEARTBEAT
    for word in words:
        assert word in caught.value.message
    assert mgmtd.version == version


async def test_refusals(mgmtd, mock_clock):
    await ops.create_targets(
        mgmtd.state, CreateTargetsRequest(targets=[TargetInfo(target_id=201, node_id=2)])
    )
    node = FakeNode(1)
    await ops.heartbeat(mgmtd.state, node.heartbeat())
    await refused(mgmtd, node.heartbeat(cluster_id="other"), "cluster id 'other'")
    await refused(mgmtd, node.heartbeat(seq=node.seq - 1), "is not after")
    await refused(mgmtd, node.heartbeat(started_ms=node.started_ms - 1), "is not after")
    await refused(mgmtd, node.heartbeat(sent_ms=BASE_MS + 60_000), "clock is +60000 ms off")
    await refused(mgmtd, node.heartbeat(node_type=NodeType.META), "registered as STORAGE")
    await refused(
        mgmtd, node.heartbeat(targets=[TargetReport(target_id=201, local_state=ONLINE)]), "belongs to node 2"
    )
    await refused(
        mgmtd,
        node.heartbeat(targets=[TargetReport(target_id=7, local_state=ONLINE)] * 2),
        "reported twice",
    )
    meta = FakeNode(9, NodeType.META)
    await refused(
        mgmtd, meta.heartbeat(targets=[TargetReport(target_id=7, local_state=ONLINE)]), "no targets"
    )
    assert mgmtd.state.heartbeats_refused == 8
    await ops.heartbeat(mgmtd.state, node.heartbeat())  # a good one still passes after all that


async def test_a_disabled_node_is_refused_until_enabled(mgmtd, mock_clock):
    node = FakeNode(4, NodeType.META)
    await ops.heartbeat(mgmtd.state, node.heartbeat())
    await ops.set_node_enabled(mgmtd.state, SetNodeEnabledRequest(node_id=4, enabled=False))
    await refused(mgmtd, node.heartbeat(), "disabled")
    response = await ops.set_node_enabled(mgmtd.state, SetNodeEnabledRequest(node_id=4, enabled=True))
    assert response.node.status == NodeStatus.ACTIVE
    await ops.heartbeat(mgmtd.state, node.heartbeat())


async def test_a_secondary_refuses_heartbeats_naming_the_primary(make_mgmtd, mock_clock):
    await make_mgmtd(1)
    secondary = await make_mgmtd(2, primary=False)
    with pytest.raises(ThreeFSError) as caught:
        await ops.heartbeat(secondary.state, FakeNode(1).heartbeat())
    assert caught.value.code == Code.MGMTD_NOT_PRIMARY
    assert caught.value.message == "not primary; primary at 127.0.0.1:9001"
