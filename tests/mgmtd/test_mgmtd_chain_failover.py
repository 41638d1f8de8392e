"""A real mgmtd (in-process, real clock, sqlite) and fake storage nodes heartbeating over RPC
drive a chain through a node failure and its return, as storage nodes will."""

from __future__ import annotations

import pytest
import trio
from mgmtd_helpers import CLUSTER, SECRET, mgmtd_config

from mgmtd.app import MgmtdApp
from mgmtd.state import system_now_ms
from threefs.kv import open_engine
from threefs.rpc import RpcClient
from threefs.wire import mgmtd as wire

UPTODATE, ONLINE = wire.LocalTargetState.UPTODATE, wire.LocalTargetState.ONLINE
INTERVAL_S = 0.1


class StorageNode:
    """Heartbeats every ``INTERVAL_S`` while ``alive``, reporting ``state`` for its target."""

    def __init__(self, client: RpcClient, address: tuple[str, int], node_id: int) -> None:
        self.client = client
        self.address = address
        self.node_id = node_id
        self.target_id = 100 + node_id
        self.state = UPTODATE
        self.alive = True
        self.started_ms = system_now_ms()
        self.seq = 0
        self.routing_version = 0
        self.chain_version = 0  # the chain version this node last saw (real storage nodes report it)

    async def run(self) -> None:
        while True:
            if self.alive:
                self.seq += 1
                request = wire.HeartbeatRequest(
                    cluster_id=CLUSTER,
                    node_id=self.node_id,
                    node_type=wire.NodeType.STORAGE,
                    seq=self.seq,
                    sent_ms=system_now_ms(),
                    started_ms=self.started_ms,
                    addresses=[f"127.0.0.1:{7000 + self.node_id}"],
                    targets=[
                        wire.TargetReport(
                            target_id=self.target_id, local_state=self.state, chain_version=self.chain_version
                        )
                    ],
                )
                reply, _ = await self.client.call(self.address, wire.HEARTBEAT, request, timeout_s=5)
                self.routing_version = reply.routing_version
            await trio.sleep(INTERVAL_S)

    def restart(self, state: wire.LocalTargetState) -> None:
        self.started_ms, self.seq, self.state, self.alive = system_now_ms(), 0, state, True


async def chain_of(client: RpcClient, address: tuple[str, int]) -> wire.ChainInfo:
    reply, _ = await client.call(address, wire.LIST_CHAINS, wire.ListChainsRequest())
    return reply.chains[0]


async def wait_for_chain(
    client, address, expected: list[tuple[int, str]], timeout_s: float = 5.0
) -> wire.ChainInfo:
    """Poll until the chain's ``(target, state)`` list is ``expected``; fails with the last seen."""
    seen: list[tuple[int, str]] = []
    with trio.move_on_after(timeout_s):
        while True:
            chain = await chain_of(client, address)
            seen = [(t.target_id, t.public_state.name) for t in chain.targets]
            if seen == expected:
                return chain
            await trio.sleep(0.02)
    pytest.fail(f"chain never became {expected}; last {seen}")


async def test_a_chain_through_failure_and_return(tmp_path):
    config = mgmtd_config(
        kv_url=f"sqlite:///{tmp_path}/mgmtd.db",
        heartbeat_interval_s=INTERVAL_S,
        heartbeat_timeout_s=0.6,
        updater_interval_s=0.05,
        lease_s=3.0,
    )
    engine = open_engine(config.kv_url)
    try:
        async with trio.open_nursery() as nursery:
            app = await nursery.start(MgmtdApp(config, SECRET, engine).run)
            await drive_the_chain(("127.0.0.1", app.port))
            nursery.cancel_scope.cancel()
    finally:
        engine.close()


async def drive_the_chain(address: tuple[str, int]) -> None:
    async with RpcClient(SECRET) as client:
        targets = [wire.TargetInfo(target_id=100 + n, node_id=n) for n in (1, 2, 3)]
        await client.call(address, wire.CREATE_TARGETS, wire.CreateTargetsRequest(targets=targets))
        spec = wire.ChainSpec(chain_id=1, target_ids=[101, 102, 103])
        await client.call(address, wire.CREATE_CHAINS, wire.CreateChainsRequest(chains=[spec]))
        nodes = {n: StorageNode(client, address, n) for n in (1, 2, 3)}
        async with trio.open_nursery() as heartbeats:
            for node in nodes.values():
                heartbeats.start_soon(node.run)
            chain = await wait_for_chain(
                client, address, [(101, "SERVING"), (102, "SERVING"), (103, "SERVING")]
            )
            assert chain.chain_version == 1

            nodes[1].alive = False  # the head stops heartbeating: failed, moved to the tail
            failed_at = trio.current_time()
            chain = await wait_for_chain(
                client, address, [(102, "SERVING"), (103, "SERVING"), (101, "OFFLINE")]
            )
            assert chain.chain_version == 2
            assert trio.current_time() - failed_at >= 0.6  # not before the heartbeat timeout
            listed, _ = await client.call(address, wire.LIST_NODES, wire.ListNodesRequest())
            assert {n.node_id: n.status for n in listed.nodes}[1] == wire.NodeStatus.FAILED
            version_seen = nodes[2].routing_version

            nodes[1].restart(ONLINE)  # back with stale data: waits, then syncs from its predecessor
            syncing = await wait_for_chain(
                client, address, [(102, "SERVING"), (103, "SERVING"), (101, "SYNCING")]
            )
            nodes[1].chain_version = syncing.chain_version
            nodes[1].state = UPTODATE  # the sync is done
            chain = await wait_for_chain(
                client, address, [(102, "SERVING"), (103, "SERVING"), (101, "SERVING")]
            )
            assert chain.chain_version == 5  # WAITING, SYNCING, SERVING
            await trio.sleep(2 * INTERVAL_S)
            assert nodes[2].routing_version > version_seen  # heartbeat replies carry the new version
            heartbeats.cancel_scope.cancel()
