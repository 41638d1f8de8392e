"""RoutingCache: refresh against a fake mgmtd, the refresher task, mismatch handling, lookups."""

from __future__ import annotations

import msgspec
import pytest
import trio
from mgmtd_fake import SECRET, sample_routing, wait_until

from client.config import MgmtdClientConfig
from client.mgmtd import MgmtdClient
from client.routing import ROUTING_MISMATCH_CODES, RoutingCache, RoutingView
from threefs.errors import Code, ThreeFSError

FAST = MgmtdClientConfig(request_timeout_s=2.0, retry_initial_backoff_s=0.01)


def bump(served, by: int = 1) -> None:
    served.fake.routing = msgspec.structs.replace(
        served.fake.routing, version=served.fake.routing.version + by
    )


async def test_refresh_returns_new_routing_then_none(fake_factory):
    served = await fake_factory()
    async with MgmtdClient([served.address], SECRET, config=FAST) as mgmtd:
        cache = RoutingCache(mgmtd)
        assert cache.version == 0
        assert (await cache.refresh()).version == 5
        assert await cache.refresh() is None
        bump(served)
        assert (await cache.refresh()).version == 6
        assert cache.version == 6


async def test_lookups_before_the_first_refresh_are_unavailable(fake_factory):
    served = await fake_factory()
    async with MgmtdClient([served.address], SECRET, config=FAST) as mgmtd:
        cache = RoutingCache(mgmtd)
        with pytest.raises(ThreeFSError) as caught:
            cache.chain(1)
        assert caught.value.code == Code.CLIENT_ROUTING_UNAVAILABLE


async def test_refresher_loads_first_then_follows_changes(fake_factory):
    served = await fake_factory()
    async with MgmtdClient([served.address], SECRET, config=FAST) as mgmtd, trio.open_nursery() as nursery:
        cache = RoutingCache(mgmtd)
        await nursery.start(cache.run_refresher, 0.02)
        assert cache.version == 5  # loaded before start() returned
        bump(served, 3)
        await wait_until(lambda: cache.version == 8)
        served.fake.failures["GetRoutingInfo"] = [ThreeFSError(Code.INVALID_ARG, "refused")]
        await wait_until(lambda: not served.fake.failures["GetRoutingInfo"])
        bump(served)  # a failed refresh was logged and the loop goes on
        await wait_until(lambda: cache.version == 9)
        nursery.cancel_scope.cancel()


async def test_refresh_on_mismatch_refreshes_once_for_many_callers(fake_factory):
    served = await fake_factory()
    async with MgmtdClient([served.address], SECRET, config=FAST) as mgmtd:
        cache = RoutingCache(mgmtd)
        await cache.refresh()
        seen = cache.version
        bump(served)
        before = served.fake.calls["GetRoutingInfo"]
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(cache.refresh_on_mismatch, seen)
        assert cache.version == 6
        assert served.fake.calls["GetRoutingInfo"] - before == 1
        view = await cache.refresh_on_mismatch(seen)  # already past `seen`: no request
        assert view.version == 6 and served.fake.calls["GetRoutingInfo"] - before == 1
    assert Code.STORAGE_STALE_CHAIN_VERSION in ROUTING_MISMATCH_CODES


async def test_ensure_version_waits_for_mgmtd_then_gives_up(fake_factory):
    served = await fake_factory()
    async with MgmtdClient([served.address], SECRET, config=FAST) as mgmtd, trio.open_nursery() as nursery:
        cache = RoutingCache(mgmtd)

        async def bump_later() -> None:
            await trio.sleep(0.1)
            bump(served, 2)

        nursery.start_soon(bump_later)
        assert (await cache.ensure_version(7)).version == 7
        with pytest.raises(ThreeFSError) as caught:
            await cache.ensure_version(9, timeout_s=0.2)
        assert caught.value.code == Code.CLIENT_ROUTING_UNAVAILABLE
        assert "routing version 9" in caught.value.message


async def test_install_never_goes_back(fake_factory):
    served = await fake_factory()
    async with MgmtdClient([served.address], SECRET, config=FAST) as mgmtd:
        cache = RoutingCache(mgmtd, sample_routing(version=10))
        assert not cache.install(sample_routing(version=9))
        assert cache.version == 10
        assert await cache.refresh() is None  # mgmtd's version 5 is older
        assert cache.version == 10
        other_cluster = msgspec.structs.replace(sample_routing(version=1), cluster_id="other")
        assert cache.install(other_cluster)


# ----------------------------------------------------------------------------- lookups (no I/O)


@pytest.fixture
def view() -> RoutingView:
    return RoutingView(sample_routing())


def error_code(call, *args) -> Code:
    with pytest.raises(ThreeFSError) as caught:
        call(*args)
    return caught.value.code


def test_chain_tables_and_slots(view):
    assert view.chain_table(1, 1).chain_ids == [1, 2]
    assert view.chain_table(1).version == 2  # 0: the latest version
    assert view.chain_id_at(1, 2, 2) == 3
    assert view.chain_id_at(1, 1, 0) == 1
    assert error_code(view.chain_id_at, 1, 1, 2) == Code.INVALID_ARG  # exact index, no wrap-around
    assert error_code(view.chain_id_at, 1, 1, -1) == Code.INVALID_ARG
    assert error_code(view.chain_table, 1, 3) == Code.MGMTD_TABLE_NOT_FOUND
    assert error_code(view.chain_table, 2) == Code.MGMTD_TABLE_NOT_FOUND


def test_heads_and_serving_replicas(view):
    assert view.head(1).target_id == 101
    assert [t.target_id for t in view.serving_replicas(1)] == [101, 201, 301]
    assert view.head(2).target_id == 202
    assert [t.target_id for t in view.serving_replicas(2)] == [202, 302]
    assert view.serving_replicas(3) == []
    with pytest.raises(ThreeFSError) as caught:
        view.head(3)
    assert caught.value.code == Code.CLIENT_NO_SERVING_REPLICA
    assert "103:LASTSRV" in caught.value.message


def test_addresses(view):
    assert view.node_address(11) == "10.0.0.11:8000"
    assert view.target_address(302) == "10.0.0.12:8000"
    assert view.target_address(view.head(2).target_id) == "10.0.0.11:8000"
    assert error_code(view.target_address, 401) == Code.CLIENT_ROUTING_UNAVAILABLE  # node 13 has none


def test_unknown_ids(view):
    assert error_code(view.chain, 99) == Code.MGMTD_CHAIN_NOT_FOUND
    assert error_code(view.head, 99) == Code.MGMTD_CHAIN_NOT_FOUND
    assert error_code(view.target, 999) == Code.MGMTD_TARGET_NOT_FOUND
    assert error_code(view.target_address, 999) == Code.MGMTD_TARGET_NOT_FOUND
    assert error_code(view.node, 99) == Code.MGMTD_NODE_NOT_FOUND
    assert error_code(view.node_address, 99) == Code.MGMTD_NODE_NOT_FOUND


async def test_cache_lookups_use_the_current_view(fake_factory):
    served = await fake_factory()
    async with MgmtdClient([served.address], SECRET, config=FAST) as mgmtd:
        cache = RoutingCache(mgmtd)
        await cache.refresh()
        assert cache.chain_id_at(1, 0, 1) == 2
        assert cache.chain_table(1, 1).version == 1
        assert cache.chain(2).chain_version == 7
        assert cache.head(1).target_id == 101
        assert len(cache.serving_replicas(2)) == 2
        assert cache.node(10).hostname == "s10"
        assert cache.target(101).node_id == 10
        assert cache.node_address(10) == "10.0.0.10:8000"
        assert cache.target_address(201) == "10.0.0.11:8000"
        assert cache.routing is cache.view.routing
