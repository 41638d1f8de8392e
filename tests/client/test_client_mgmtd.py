"""MgmtdClient against fake mgmtds on loopback: primary discovery, redirects, failover, bounded
failure, and which errors are retried."""

from __future__ import annotations

import pytest
import trio
from mgmtd_fake import SECRET, unused_address

from client.config import MgmtdClientConfig
from client.mgmtd import MgmtdClient
from threefs.errors import Code, ThreeFSError
from threefs.rpc import RpcClient
from threefs.wire import mgmtd as wire

FAST = MgmtdClientConfig(request_timeout_s=2.0, attempt_timeout_s=1.0, retry_initial_backoff_s=0.01)


def client(addresses: list[str], config: MgmtdClientConfig = FAST, secret: str = SECRET) -> MgmtdClient:
    return MgmtdClient(addresses, secret, config=config)


async def test_finds_the_primary_through_a_non_primary(fake_factory):
    primary = await fake_factory()
    other = await fake_factory(is_primary=False)
    other.fake.primary_address = primary.address
    async with client([other.address]) as mgmtd:
        assert await mgmtd.primary() == primary.address
        nodes = await mgmtd.list_nodes()
    assert sorted(n.node_id for n in nodes) == [1, 10, 11, 12, 13]
    assert other.fake.calls["ListNodes"] == 0  # asked only where the primary is
    assert primary.fake.calls["ListNodes"] == 1


async def test_follows_not_primary_after_the_primary_moves(fake_factory):
    first = await fake_factory()
    second = await fake_factory(is_primary=False)
    async with client([first.address, second.address]) as mgmtd:
        await mgmtd.list_chains()
        assert mgmtd.known_primary == first.address
        first.fake.is_primary, first.fake.primary_address = False, second.address
        second.fake.is_primary = True
        await mgmtd.list_chains()
        assert mgmtd.known_primary == second.address
    assert first.fake.calls["ListChains"] == 2  # the second call was refused with NOT_PRIMARY...
    assert second.fake.calls["ListChains"] == 1  # ...and followed to the new primary


async def test_skips_an_address_that_is_down(fake_factory):
    primary = await fake_factory()
    async with client([unused_address(), primary.address]) as mgmtd:
        assert await mgmtd.get_routing_info() == primary.fake.routing


async def test_fails_over_when_the_primary_dies(fake_factory):
    first = await fake_factory()
    second = await fake_factory(is_primary=False)
    async with client([first.address, second.address]) as mgmtd:
        await mgmtd.list_targets()
        first.stop()
        second.fake.is_primary = True
        await mgmtd.list_targets()
        assert mgmtd.known_primary == second.address


async def test_no_answer_is_routing_unavailable_within_the_timeout():
    dead = [unused_address(), unused_address()]
    config = MgmtdClientConfig(request_timeout_s=0.5, retry_initial_backoff_s=0.01)
    started = trio.current_time()
    async with client(dead, config) as mgmtd:
        with pytest.raises(ThreeFSError) as caught:
            await mgmtd.list_nodes()
    assert trio.current_time() - started < 3.0
    assert caught.value.code == Code.CLIENT_ROUTING_UNAVAILABLE
    for address in dead:
        assert address in caught.value.message
    assert "RPC_CONNECT_FAILED" in caught.value.message


async def test_no_primary_elected_is_routing_unavailable(fake_factory):
    lonely = await fake_factory(is_primary=False)  # names no primary
    config = MgmtdClientConfig(request_timeout_s=0.3, retry_initial_backoff_s=0.01)
    async with client([lonely.address], config) as mgmtd:
        with pytest.raises(ThreeFSError) as caught:
            await mgmtd.list_nodes()
    assert caught.value.code == Code.CLIENT_ROUTING_UNAVAILABLE
    assert "primary unknown" in caught.value.message
    assert lonely.fake.calls["GetPrimary"] >= 2  # asked again after a backoff


async def test_a_wrong_secret_fails_at_once_with_auth_failed(fake_factory):
    primary = await fake_factory()
    started = trio.current_time()
    async with client([primary.address], FAST, secret="wrong") as mgmtd:
        with pytest.raises(ThreeFSError) as caught:
            await mgmtd.list_nodes()
    assert caught.value.code == Code.RPC_AUTH_FAILED
    assert trio.current_time() - started < FAST.request_timeout_s / 2  # not retried to the deadline


async def test_retries_retryable_errors_only(fake_factory):
    primary = await fake_factory()
    primary.fake.failures["ListNodes"] = [ThreeFSError(Code.KV_CONFLICT, "busy")] * 2
    primary.fake.failures["ListChains"] = [ThreeFSError(Code.INVALID_ARG, "no")]
    async with client([primary.address]) as mgmtd:
        assert len(await mgmtd.list_nodes()) == 5
        with pytest.raises(ThreeFSError) as caught:
            await mgmtd.list_chains()
    assert primary.fake.calls["ListNodes"] == 3
    assert (caught.value.code, primary.fake.calls["ListChains"]) == (Code.INVALID_ARG, 1)


async def test_outcome_unknown_is_retried_only_for_idempotent_requests(fake_factory):
    primary = await fake_factory()
    unknown = ThreeFSError(Code.RPC_CONNECTION_CLOSED, "lost")
    primary.fake.failures["CreateTargets"] = [unknown]
    primary.fake.failures["OfflineTarget"] = [unknown]
    async with client([primary.address]) as mgmtd:
        with pytest.raises(ThreeFSError) as caught:
            await mgmtd.create_targets([wire.TargetInfo(target_id=501, node_id=10)])
        assert caught.value.code == Code.RPC_CONNECTION_CLOSED
        assert (await mgmtd.offline_target(101)).public_state == wire.PublicTargetState.OFFLINE
    assert primary.fake.calls["CreateTargets"] == 1
    assert primary.fake.calls["OfflineTarget"] == 2


async def test_a_retryable_error_that_outlasts_the_deadline_is_raised(fake_factory):
    primary = await fake_factory()
    primary.fake.failures["ListNodes"] = [ThreeFSError(Code.KV_CONFLICT, "busy")] * 1000
    config = MgmtdClientConfig(request_timeout_s=0.3, retry_initial_backoff_s=0.01)
    async with client([primary.address], config) as mgmtd:
        with pytest.raises(ThreeFSError) as caught:
            await mgmtd.list_nodes()
    assert caught.value.code == Code.KV_CONFLICT


async def test_every_method_sends_its_request(fake_factory):
    primary = await fake_factory()
    fake = primary.fake
    async with RpcClient(SECRET) as rpc:
        mgmtd = MgmtdClient([primary.address], rpc=rpc, config=FAST)  # borrowed: no `async with`
        heartbeat = wire.HeartbeatRequest(
            cluster_id="test", node_id=10, node_type=wire.NodeType.STORAGE, seq=1, sent_ms=1, started_ms=1
        )
        assert (await mgmtd.heartbeat(heartbeat)).routing_version == 5
        assert await mgmtd.create_targets([wire.TargetInfo(target_id=501, node_id=10)]) == 6
        assert await mgmtd.create_chains([wire.ChainSpec(chain_id=9, target_ids=[501])]) == 7
        table = await mgmtd.create_chain_table(1, [1, 2, 3, 9], "more")
        assert (table.table_id, table.version) == (1, 3)
        assert (await mgmtd.set_node_enabled(11, False)).status == wire.NodeStatus.DISABLED
        assert await mgmtd.remove_target(401) == 8
        assert (await mgmtd.update_chain(2, 102, add=False)).chain_id == 2
        assert (await mgmtd.rotate_last_serving(3)).chain_id == 3
        assert (await mgmtd.set_preferred_order(1, [201, 101, 301])).preferred_order == [201, 101, 301]
        assert [t.table_id for t in await mgmtd.list_chain_tables()] == [1, 1]
        assert len(await mgmtd.list_targets()) == 9
        assert await mgmtd.list_client_sessions() == []
        with pytest.raises(ThreeFSError) as caught:
            await mgmtd.rotate_last_serving(77)
        assert caught.value.code == Code.MGMTD_CHAIN_NOT_FOUND
    kinds = [type(r).__name__ for r in fake.requests]
    assert kinds[:3] == ["HeartbeatRequest", "CreateTargetsRequest", "CreateChainsRequest"]
    assert fake.requests[3] == wire.CreateChainTableRequest(
        table_id=1, chain_ids=[1, 2, 3, 9], description="more"
    )
    assert fake.requests[5] == wire.RemoveTargetRequest(target_id=401)
    assert fake.requests[6] == wire.UpdateChainRequest(chain_id=2, target_id=102, add=False)


async def test_routing_info_is_none_when_current(fake_factory):
    primary = await fake_factory()
    async with client([primary.address]) as mgmtd:
        assert (await mgmtd.get_routing_info()).version == 5
        assert await mgmtd.get_routing_info(known_version=5) is None


def test_bad_arguments_are_refused():
    with pytest.raises(ThreeFSError) as caught:
        MgmtdClient([], SECRET)
    assert caught.value.code == Code.INVALID_ARG
    with pytest.raises(ThreeFSError):
        MgmtdClient(["no-port"], SECRET)
    with pytest.raises(ThreeFSError):
        MgmtdClient(["127.0.0.1:1"])  # neither a secret nor an RpcClient


async def test_concurrent_callers_share_one_search(fake_factory):
    primary = await fake_factory()
    other = await fake_factory(is_primary=False)
    other.fake.primary_address = primary.address
    async with client([other.address]) as mgmtd, trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(mgmtd.list_nodes)
    assert other.fake.calls["GetPrimary"] == 1
    assert primary.fake.calls["GetPrimary"] == 1
    assert primary.fake.calls["ListNodes"] == 5
