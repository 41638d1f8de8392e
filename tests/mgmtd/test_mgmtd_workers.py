"""The heartbeat checker and the chain updater, driven with ``run_once`` on a MockClock."""

from __future__ import annotations

import time

import trio
import trio.testing
from mgmtd_helpers import FakeNode, beat, chain_states, make_chain

from mgmtd import ops
from threefs.wire.mgmtd import (
    ChainSpec,
    CreateChainsRequest,
    CreateTargetsRequest,
    LocalTargetState,
    NodeStatus,
    NodeType,
    OfflineTargetRequest,
    RotateLastServingRequest,
    SetNodeEnabledRequest,
    TargetInfo,
    UpdateChainRequest,
)

UPTODATE, ONLINE, OFFLINE = LocalTargetState.UPTODATE, LocalTargetState.ONLINE, LocalTargetState.OFFLINE


async def test_checker_fails_only_nodes_silent_past_the_timeout(mgmtd, mock_clock):
    quiet, chatty = FakeNode(1, NodeType.META), FakeNode(2, NodeType.CLIENT)
    await beat(mgmtd, [quiet, chatty])
    version = mgmtd.version
    await mgmtd.advance(mock_clock, 2.9)
    await beat(mgmtd, [chatty])
    assert await mgmtd.checker.run_once() == []
    assert mgmtd.version == version  # nothing to do writes nothing
    await mgmtd.advance(mock_clock, 0.2)  # quiet: 3.1 s > 3 s; chatty: 0.2 s
    assert await mgmtd.checker.run_once() == [1]
    assert mgmtd.routing.nodes[1].status == NodeStatus.FAILED
    assert mgmtd.routing.nodes[2].status == NodeStatus.ACTIVE
    assert mgmtd.version == version + 1
    await beat(mgmtd, [quiet])  # back
    assert mgmtd.routing.nodes[1].status == NodeStatus.ACTIVE


async def test_checker_leaves_disabled_nodes_alone(mgmtd, mock_clock):
    node = FakeNode(1, NodeType.META)
    await beat(mgmtd, [node])
    await ops.set_node_enabled(mgmtd.state, SetNodeEnabledRequest(node_id=1, enabled=False))
    await mgmtd.advance(mock_clock, 10)
    assert await mgmtd.checker.run_once() == []
    assert mgmtd.routing.nodes[1].status == NodeStatus.DISABLED


async def test_a_failed_node_leaves_its_chain_and_comes_back_through_a_sync(mgmtd, mock_clock):
    nodes = await make_chain(mgmtd)
    assert await mgmtd.updater.run_once() == []
    assert chain_states(mgmtd) == [(101, "SERVING"), (102, "SERVING"), (103, "SERVING")]
    chain_version = mgmtd.routing.chains[1].chain_version

    # Node 1 (the head) goes silent: failed, its target local OFFLINE, moved to the tail.
    await mgmtd.advance(mock_clock, 2)
    await beat(mgmtd, [nodes[2], nodes[3]])
    await mgmtd.advance(mock_clock, 1.5)
    assert await mgmtd.checker.run_once() == [1]
    assert mgmtd.routing.targets[101].local_state == OFFLINE
    assert await mgmtd.updater.run_once() == [1]
    assert chain_states(mgmtd) == [(102, "SERVING"), (103, "SERVING"), (101, "OFFLINE")]
    assert mgmtd.routing.chains[1].chain_version == chain_version + 1
    assert mgmtd.routing.targets[101].public_state.name == "OFFLINE"

    # It restarts and reports ONLINE: WAITING, then SYNCING, then (sync done) UPTODATE -> SERVING.
    nodes[1].restart()
    nodes[1].targets = {101: ONLINE}
    await beat(mgmtd, [nodes[1]])
    assert await mgmtd.updater.run_once() == [1]
    assert chain_states(mgmtd)[-1] == (101, "WAITING")
    assert await mgmtd.updater.run_once() == [1]
    assert chain_states(mgmtd)[-1] == (101, "SYNCING")
    assert await mgmtd.updater.run_once() == []  # nothing moves until the sync is done
    # A sync finished under an older chain version does not count...
    nodes[1].targets = {101: UPTODATE}
    nodes[1].chain_versions = {101: mgmtd.routing.chains[1].chain_version - 1}
    await beat(mgmtd, [nodes[1]])
    assert await mgmtd.updater.run_once() == []
    assert chain_states(mgmtd)[-1] == (101, "SYNCING")
    # ...one under the current version does.
    nodes[1].chain_versions = {101: mgmtd.routing.chains[1].chain_version}
    await beat(mgmtd, [nodes[1]])
    assert await mgmtd.updater.run_once() == [1]
    assert chain_states(mgmtd) == [(102, "SERVING"), (103, "SERVING"), (101, "SERVING")]
    assert mgmtd.routing.chains[1].chain_version == chain_version + 4
    assert {t.public_state.name for t in mgmtd.routing.targets.values()} == {"SERVING"}


async def test_all_replicas_lost_leaves_a_lastsrv_that_an_admin_can_rotate(mgmtd, mock_clock):
    await make_chain(mgmtd, (1, 2))
    await mgmtd.advance(mock_clock, 3.5)
    assert sorted(await mgmtd.checker.run_once()) == [1, 2]
    await mgmtd.updater.run_once()
    assert chain_states(mgmtd) == [(101, "LASTSRV"), (102, "OFFLINE")]
    response = await ops.rotate_last_serving_op(mgmtd.state, RotateLastServingRequest(chain_id=1))
    assert [(t.target_id, t.public_state.name) for t in response.chain.targets] == [
        (102, "LASTSRV"),
        (101, "OFFLINE"),
    ]


async def test_a_new_chain_is_not_failed_during_its_grace_period(make_mgmtd, mock_clock):
    mgmtd = await make_mgmtd(chain_grace_s=10.0)
    targets = [TargetInfo(target_id=100 + n, node_id=n) for n in (1, 2)]
    await ops.create_targets(mgmtd.state, CreateTargetsRequest(targets=targets))
    await ops.create_chains(
        mgmtd.state, CreateChainsRequest(chains=[ChainSpec(chain_id=1, target_ids=[101, 102])])
    )
    node = FakeNode(1)
    node.targets = {101: UPTODATE}
    await beat(mgmtd, [node])  # node 2 never reports
    await mgmtd.advance(mock_clock, 9.9)
    await beat(mgmtd, [node])
    assert await mgmtd.updater.run_once() == []
    await mgmtd.advance(mock_clock, 0.2)
    await beat(mgmtd, [node])
    assert await mgmtd.updater.run_once() == [1]
    assert chain_states(mgmtd) == [(101, "SERVING"), (102, "OFFLINE")]


async def test_the_grace_period_ends_once_every_target_has_reported(make_mgmtd, mock_clock):
    mgmtd = await make_mgmtd(chain_grace_s=60.0)
    nodes = await make_chain(mgmtd, (1, 2))  # both report UPTODATE, not yet knowing the chain
    assert await mgmtd.updater.run_once() == []
    await mgmtd.advance(mock_clock, 4.0)
    await beat(mgmtd, [nodes[1]])  # node 2 dies before reporting the chain: still in grace
    assert await mgmtd.checker.run_once() == [2]
    assert await mgmtd.updater.run_once() == []
    assert chain_states(mgmtd) == [(101, "SERVING"), (102, "SERVING")]
    await beat(mgmtd, [nodes[2]])  # back; now both report the chain's version
    for node in nodes.values():
        node.chain_versions = {100 + node.node_id: mgmtd.routing.chains[1].chain_version}
    await beat(mgmtd, nodes.values())
    assert await mgmtd.updater.run_once() == []
    await mgmtd.advance(mock_clock, 4.0)  # node 2 dies again, 8 s into the 60 s grace period
    await beat(mgmtd, [nodes[1]])
    assert await mgmtd.checker.run_once() == [2]
    assert await mgmtd.updater.run_once() == [1]  # acted on at once, not after the grace
    assert chain_states(mgmtd) == [(101, "SERVING"), (102, "OFFLINE")]


async def test_an_offlined_target_stays_out_until_re_added(mgmtd, mock_clock):
    nodes = await make_chain(mgmtd)
    response = await ops.offline_target(mgmtd.state, OfflineTargetRequest(target_id=102))
    assert response.target.admin_offline and response.target.public_state.name == "OFFLINE"
    assert chain_states(mgmtd) == [(101, "SERVING"), (103, "SERVING"), (102, "OFFLINE")]
    await beat(mgmtd, nodes.values())  # node 2 still reports its target UPTODATE
    assert await mgmtd.updater.run_once() == []
    assert chain_states(mgmtd)[-1] == (102, "OFFLINE")
    nodes[2].targets = {102: ONLINE}
    await beat(mgmtd, [nodes[2]])
    await ops.update_chain_op(mgmtd.state, UpdateChainRequest(chain_id=1, target_id=102, add=True))
    assert chain_states(mgmtd)[-1] == (102, "WAITING")
    assert not mgmtd.routing.targets[102].admin_offline
    await mgmtd.updater.run_once()
    assert chain_states(mgmtd)[-1] == (102, "SYNCING")


async def test_a_disabled_node_counts_as_offline(mgmtd, mock_clock):
    await make_chain(mgmtd)
    await ops.set_node_enabled(mgmtd.state, SetNodeEnabledRequest(node_id=3, enabled=False))
    assert mgmtd.routing.targets[103].local_state == OFFLINE
    assert await mgmtd.updater.run_once() == [1]
    assert chain_states(mgmtd) == [(101, "SERVING"), (102, "SERVING"), (103, "OFFLINE")]


async def test_workers_do_nothing_on_a_secondary(make_mgmtd, mock_clock):
    primary = await make_mgmtd(1)
    await make_chain(primary)
    secondary = await make_mgmtd(2, primary=False)
    mock_clock.jump(2.5)
    assert await secondary.checker.run_once() == []
    assert await secondary.updater.run_once() == []


async def test_a_state_change_wakes_the_updater_without_waiting_for_its_interval(make_mgmtd, mock_clock):
    mgmtd = await make_mgmtd(updater_interval_s=1000.0)
    nodes = await make_chain(mgmtd)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(mgmtd.updater.run_forever)
        await trio.testing.wait_all_tasks_blocked()
        nodes[2].targets = {102: OFFLINE}  # the disk failed; the node still heartbeats
        await beat(mgmtd, [nodes[2]])
        for _ in range(500):  # the KV commit runs in a thread: give it real time, not trio time
            if chain_states(mgmtd)[-1] == (102, "OFFLINE"):
                break
            await trio.to_thread.run_sync(time.sleep, 0.002)
        assert chain_states(mgmtd) == [(101, "SERVING"), (103, "SERVING"), (102, "OFFLINE")]
        assert trio.current_time() == 0  # no trio time passed: the heartbeat woke it
        nursery.cancel_scope.cancel()
