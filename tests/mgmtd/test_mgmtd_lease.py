"""Primary election: the lease decision, takeover after expiry, fencing of a deposed primary's
writes, release on shutdown, and what a new primary loads."""

from __future__ import annotations

import pytest
from mgmtd_helpers import BASE_MS, FakeNode

from mgmtd import ops
from mgmtd.components.lease import Candidate, decide_lease, release_record
from mgmtd.store import LeaseRecord, load_routing, read_lease
from threefs.errors import Code, ThreeFSError
from threefs.kv import run_transaction
from threefs.wire.mgmtd import (
    ChainSpec,
    CreateChainsRequest,
    CreateTargetsRequest,
    NodeStatus,
    TargetInfo,
    parse_not_primary,
)

ME = Candidate(1, "127.0.0.1:9001", "me")
OTHER = LeaseRecord(
    holder_node_id=2,
    holder_address="127.0.0.1:9002",
    holder_instance="other",
    term=4,
    expires_ms=5000,
    acquired_ms=0,
)


def test_decide_takes_a_free_or_expired_lease_with_a_new_term():
    fresh = decide_lease(None, ME, 1000, 3000)
    assert (fresh.term, fresh.expires_ms, fresh.acquired_ms, fresh.holder_instance) == (1, 4000, 1000, "me")
    assert decide_lease(OTHER, ME, 4999, 3000) is None
    taken = decide_lease(OTHER, ME, 5000, 3000)
    assert (taken.term, taken.holder_node_id, taken.expires_ms) == (5, 1, 8000)


def test_decide_extends_its_own_lease_in_the_same_term_only_before_expiry():
    mine = decide_lease(None, ME, 1000, 3000)
    extended = decide_lease(mine, ME, 2000, 3000)
    assert (extended.term, extended.expires_ms, extended.acquired_ms) == (1, 5000, 1000)
    lapsed = decide_lease(mine, ME, 4000, 3000)
    assert lapsed.term == 2  # it stopped acting as primary at expiry: a new tenure
    restarted = Candidate(1, ME.address, "me-after-restart")
    assert decide_lease(mine, restarted, 2000, 3000) is None  # same node id, other process


def test_release_expires_only_its_own_live_lease():
    mine = decide_lease(None, ME, 1000, 3000)
    assert release_record(mine, ME, 2000).expires_ms == 2000
    assert release_record(OTHER, ME, 2000) is None
    assert release_record(mine, ME, 4000) is None


async def test_one_primary_and_the_others_name_it(make_mgmtd, mock_clock):
    first = await make_mgmtd(1)
    second = await make_mgmtd(2, primary=False)
    assert first.state.is_primary and not second.state.is_primary
    with pytest.raises(ThreeFSError) as caught:
        second.state.require_primary()
    assert caught.value.code == Code.MGMTD_NOT_PRIMARY
    assert parse_not_primary(caught.value.message) == "127.0.0.1:9001"
    answer = ops.get_primary(second.state)
    assert (answer.is_primary, answer.primary_node_id, answer.primary_address) == (False, 1, "127.0.0.1:9001")
    assert ops.get_primary(first.state).is_primary


async def test_the_holder_keeps_the_lease_by_extending_it(make_mgmtd, mock_clock):
    first = await make_mgmtd(1)
    second = await make_mgmtd(2, primary=False)
    for _ in range(6):  # two lease periods of regular extensions
        mock_clock.jump(first.keeper.renew_interval_s)
        assert await first.keeper.run_once()
        assert not await second.keeper.run_once()
    assert first.state.lease.term == 1


async def test_a_successor_takes_over_within_one_lease_period_and_loads_the_routing(make_mgmtd, mock_clock):
    first = await make_mgmtd(1)
    await ops.heartbeat(first.state, FakeNode(7).heartbeat())
    await ops.create_targets(first.state, CreateTargetsRequest(targets=[TargetInfo(target_id=11, node_id=7)]))
    second = await make_mgmtd(2, primary=False)
    # The primary dies right after extending: the successor waits exactly until expiry.
    mock_clock.jump(1.0)
    assert await first.keeper.run_once()
    assert not await second.keeper.run_once()
    delay = second.keeper.next_delay_s()
    assert 0 < delay <= second.keeper.renew_interval_s
    waited = 0.0
    while not await second.keeper.run_once():
        delay = second.keeper.next_delay_s()
        mock_clock.jump(delay)
        waited += delay
    assert waited <= 3.0 + 0.01  # one lease period
    assert not first.state.is_primary  # its own clock says the lease ran out
    routing = second.routing
    assert routing.version == 2  # the registration and the targets
    assert 11 in routing.targets and routing.nodes[7].status == NodeStatus.ACTIVE
    assert second.state.lease.term == 2
    # Fresh heartbeat grace: the node last heard long ago is not failed by the new primary.
    assert second.state.live.heartbeats[7].last_ms == second.state.now_ms()
    assert await second.checker.run_once() == []


async def test_a_deposed_primary_cannot_write(make_mgmtd, engine, mock_clock):
    # The first mgmtd's clock runs 2 s behind: it still believes in its lease when the second,
    # on time, takes it over. Its next write is fenced off and it steps down.
    first = await make_mgmtd(1, offset_ms=-2000)
    second = await make_mgmtd(2, primary=False)
    mock_clock.jump(1.5)  # first's lease (expiring at its 3.0 s = true 1.0 s) has run out
    assert await second.keeper.run_once()
    assert first.state.is_primary  # by its own (slow) clock
    with pytest.raises(ThreeFSError) as caught:
        await ops.create_targets(
            first.state, CreateTargetsRequest(targets=[TargetInfo(target_id=1, node_id=1)])
        )
    assert caught.value.code == Code.MGMTD_LEASE_LOST
    assert not first.state.is_primary
    stored = run_transaction(engine, lambda txn: load_routing(txn, "test-cluster"))
    assert stored.targets == {} and stored.version == 0
    await ops.create_targets(second.state, CreateTargetsRequest(targets=[TargetInfo(target_id=1, node_id=1)]))
    assert not await first.keeper.run_once()  # and it sees who holds the lease now


async def test_release_lets_a_successor_take_over_at_once(make_mgmtd, engine, mock_clock):
    first = await make_mgmtd(1)
    second = await make_mgmtd(2, primary=False)
    await first.keeper.release()
    assert not first.state.is_primary
    assert run_transaction(engine, read_lease).expires_ms == BASE_MS
    mock_clock.jump(0.001)
    assert await second.keeper.run_once()


async def test_the_new_primary_keeps_chains_created_before(make_mgmtd, mock_clock):
    first = await make_mgmtd(1)
    for node_id in (1, 2):
        await ops.heartbeat(first.state, FakeNode(node_id).heartbeat())
    targets = [TargetInfo(target_id=100 + n, node_id=n) for n in (1, 2)]
    await ops.create_targets(first.state, CreateTargetsRequest(targets=targets))
    await ops.create_chains(
        first.state, CreateChainsRequest(chains=[ChainSpec(chain_id=1, target_ids=[101, 102])])
    )
    await first.keeper.release()
    second = await make_mgmtd(2)
    chain = second.routing.chains[1]
    assert [t.target_id for t in chain.targets] == [101, 102]
    assert second.routing.targets[101].chain_id == 1


async def test_a_store_of_another_cluster_is_never_taken(make_mgmtd, mock_clock):
    first = await make_mgmtd(1)
    await first.keeper.release()
    stranger = await make_mgmtd(3, primary=False, cluster_id="another-cluster")
    assert stranger.state.lease is None or stranger.state.lease.holder_node_id != 3
