"""The mgmtd service over real RPC (in-process apps on loopback): primary and secondary answers,
heartbeats, routing info, admin calls, and the metrics endpoint."""

from __future__ import annotations

import pytest
import trio
from mgmtd_helpers import CLUSTER, SECRET, mgmtd_config

from mgmtd.app import MgmtdApp
from mgmtd.state import system_now_ms
from threefs.errors import Code, ThreeFSError
from threefs.kv import MemEngine
from threefs.rpc import RpcClient
from threefs.wire import mgmtd as wire


async def http_get(port: int, path: str) -> tuple[str, str]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.decode().partition("\r\n\r\n")
    return head.split("\r\n")[0], body


@pytest.fixture
async def apps(nursery):
    engine = MemEngine()
    started = []
    for node_id in (1, 2):
        config = mgmtd_config(node_id=node_id, metrics_port=0 if node_id == 1 else -1)
        app = MgmtdApp(config, SECRET, engine, now_ms=system_now_ms)
        started.append(await nursery.start(app.run))
    return started


async def test_primary_and_secondary_over_rpc(apps):
    primary, secondary = apps
    async with RpcClient(SECRET) as client:
        answer, _ = await client.call(
            ("127.0.0.1", secondary.port), wire.GET_PRIMARY, wire.GetPrimaryRequest()
        )
        assert (answer.is_primary, answer.primary_node_id) == (False, 1)
        assert answer.primary_address == f"127.0.0.1:{primary.port}"
        answer, _ = await client.call(("127.0.0.1", primary.port), wire.GET_PRIMARY, wire.GetPrimaryRequest())
        assert answer.is_primary and answer.lease_expires_ms > system_now_ms()
        for spec, request in [
            (wire.LIST_NODES, wire.ListNodesRequest()),
            (wire.GET_ROUTING_INFO, wire.GetRoutingInfoRequest()),
            (wire.CREATE_TARGETS, wire.CreateTargetsRequest(targets=[])),
        ]:
            with pytest.raises(ThreeFSError) as caught:
                await client.call(("127.0.0.1", secondary.port), spec, request)
            assert caught.value.code == Code.MGMTD_NOT_PRIMARY
            assert wire.parse_not_primary(caught.value.message) == primary.state.address


async def test_heartbeat_routing_info_and_admin_over_rpc(apps):
    primary = apps[0]
    address = ("127.0.0.1", primary.port)
    async with RpcClient(SECRET) as client:
        heartbeat = wire.HeartbeatRequest(
            cluster_id=CLUSTER,
            node_id=4,
            node_type=wire.NodeType.STORAGE,
            seq=1,
            sent_ms=system_now_ms(),
            started_ms=1,
            addresses=["127.0.0.1:7004"],
        )
        reply, _ = await client.call(address, wire.HEARTBEAT, heartbeat)
        assert reply.routing_version == 1
        request = wire.CreateTargetsRequest(targets=[wire.TargetInfo(target_id=41, node_id=4)])
        await client.call(address, wire.CREATE_TARGETS, request)
        reply, _ = await client.call(
            address, wire.GET_ROUTING_INFO, wire.GetRoutingInfoRequest(known_version=0)
        )
        routing = reply.routing
        assert routing.version == 2 and routing.cluster_id == CLUSTER and 41 in routing.targets
        assert routing.nodes[4].heartbeat_seq == 1
        reply, _ = await client.call(
            address, wire.GET_ROUTING_INFO, wire.GetRoutingInfoRequest(known_version=2)
        )
        assert reply.routing is None
        with pytest.raises(ThreeFSError) as caught:
            await client.call(address, wire.HEARTBEAT, heartbeat)  # the same seq again
        assert caught.value.code == Code.MGMTD_BAD_HEARTBEAT
        listed, _ = await client.call(address, wire.LIST_TARGETS, wire.ListTargetsRequest())
        assert [t.target_id for t in listed.targets] == [41]


async def test_metrics_endpoint(apps):
    primary = apps[0]
    status, body = await http_get(primary.metrics_port, "/metrics")
    assert status == "HTTP/1.1 200 OK"
    assert "threefs_mgmtd_is_primary 1.0" in body
    assert "threefs_mgmtd_routing_version 0.0" in body
    assert 'threefs_mgmtd_nodes{status="ACTIVE",type="STORAGE"} 0.0' in body
    assert 'threefs_mgmtd_targets{local_state="OFFLINE",public_state="SERVING"} 0.0' in body
    assert 'threefs_mgmtd_heartbeats_total{result="accepted"} 0.0' in body
    status, _ = await http_get(primary.metrics_port, "/other")
    assert status == "HTTP/1.1 404 Not Found"
    secondary_metrics = apps[1].metrics.render().decode()
    assert "threefs_mgmtd_is_primary 0.0" in secondary_metrics
    assert "threefs_mgmtd_routing_version" not in secondary_metrics
