"""A fake mgmtd for the client tests: a real ``RpcServer`` on loopback serving ``FakeMgmtd``, which
answers from a ``RoutingInfo`` it holds, records requests, and plays primary or not.

``serve_fake`` runs it inside a test's trio nursery; ``ThreadedFake`` runs it in a thread with its
own ``trio.run`` for sync tests (the CLI calls ``trio.run`` itself).
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Callable

import msgspec
import trio

from threefs.errors import Code, ThreeFSError
from threefs.rpc import CallContext, RpcServer, RpcService, rpc_method
from threefs.wire import mgmtd as wire
from threefs.wire.mgmtd import ChainTarget, PublicTargetState

SECRET = "client-test-secret"
SERVING, LASTSRV, OFFLINE = PublicTargetState.SERVING, PublicTargetState.LASTSRV, PublicTargetState.OFFLINE


def sample_routing(version: int = 5) -> wire.RoutingInfo:
    """Storage nodes 10, 11, 12 (with addresses) and 13 (FAILED, no address); table 1 in two
    versions. Chain 1: 101, 201, 301 all SERVING; chain 2: 202, 302 SERVING, 102 OFFLINE;
    chain 3: nothing SERVING (103 LASTSRV, 203 OFFLINE); chain 4: 401 on node 13."""
    nodes = {
        1: wire.NodeInfo(
            node_id=1, node_type=wire.NodeType.MGMTD, hostname="m1", addresses=["127.0.0.1:9000"]
        ),
        **{
            n: wire.NodeInfo(
                node_id=n,
                node_type=wire.NodeType.STORAGE,
                hostname=f"s{n}",
                addresses=[f"10.0.0.{n}:8000"],
                version="0.1.0",
                last_heartbeat_ms=1_700_000_000_000,
            )
            for n in (10, 11, 12)
        },
        13: wire.NodeInfo(node_id=13, node_type=wire.NodeType.STORAGE, status=wire.NodeStatus.FAILED),
    }
    targets = {
        t: wire.TargetInfo(
            target_id=t,
            node_id=10 + t // 100 - 1,
            chain_id=t % 100,
            public_state=SERVING,
            local_state=wire.LocalTargetState.UPTODATE,
            capacity_bytes=1 << 40,
            used_bytes=3 << 29,
        )
        for t in (101, 201, 301, 102, 202, 302, 103, 203)
    }
    targets[401] = wire.TargetInfo(target_id=401, node_id=13, chain_id=4)
    chains = {
        1: wire.ChainInfo(
            chain_id=1, chain_version=3, targets=[ChainTarget(t, SERVING) for t in (101, 201, 301)]
        ),
        2: wire.ChainInfo(
            chain_id=2,
            chain_version=7,
            targets=[ChainTarget(202, SERVING), ChainTarget(302, SERVING), ChainTarget(102, OFFLINE)],
            preferred_order=[202, 302],
        ),
        3: wire.ChainInfo(chain_id=3, targets=[ChainTarget(103, LASTSRV), ChainTarget(203, OFFLINE)]),
        4: wire.ChainInfo(chain_id=4, targets=[ChainTarget(401, SERVING)]),
    }
    tables = {
        1: [
            wire.ChainTable(table_id=1, version=1, chain_ids=[1, 2]),
            wire.ChainTable(table_id=1, version=2, chain_ids=[1, 2, 3], description="grown"),
        ]
    }
    return wire.RoutingInfo(
        version=version, cluster_id="test", nodes=nodes, chain_tables=tables, chains=chains, targets=targets
    )


class FakeMgmtd(RpcService):
    """Answers every mgmtd method from ``self.routing``.

    ``is_primary`` / ``primary_address``: a non-primary answers GetPrimary with the address it
    names and every other method with MGMTD_NOT_PRIMARY naming it. ``address`` is filled in once
    served (a primary names itself). ``failures[name]``: errors to raise, one per call, before
    answering normally. ``calls`` counts calls per method name; ``requests`` keeps every
    request of the methods that change something.
    """

    spec = wire.MGMTD_SERVICE

    def __init__(self, routing: wire.RoutingInfo | None = None, *, is_primary: bool = True) -> None:
        self.routing = routing or sample_routing()
        self.is_primary = is_primary
        self.primary_address = ""
        self.address = ""
        self.sessions: list[wire.ClientSession] = []
        self.failures: dict[str, list[ThreeFSError]] = {}
        self.calls: Counter[str] = Counter()
        self.requests: list[msgspec.Struct] = []

    def _enter(self, name: str, request: msgspec.Struct | None = None) -> None:
        self.calls[name] += 1
        if not self.is_primary:
            raise ThreeFSError(Code.MGMTD_NOT_PRIMARY, wire.not_primary_message(self.primary_address))
        pending = self.failures.get(name)
        if pending:
            raise pending.pop(0)
        if request is not None:
            self.requests.append(request)

    def _bump(self) -> int:
        self.routing = msgspec.structs.replace(self.routing, version=self.routing.version + 1)
        return self.routing.version

    @rpc_method(wire.GET_PRIMARY)
    async def get_primary(self, ctx: CallContext, request: wire.GetPrimaryRequest, payload: object):
        self.calls["GetPrimary"] += 1
        address = self.address if self.is_primary else self.primary_address
        return wire.GetPrimaryResponse(is_primary=self.is_primary, primary_address=address)

    @rpc_method(wire.HEARTBEAT)
    async def heartbeat(self, ctx: CallContext, request: wire.HeartbeatRequest, payload: object):
        self._enter("Heartbeat", request)
        return wire.HeartbeatResponse(routing_version=self.routing.version, heartbeat_interval_ms=1000)

    @rpc_method(wire.GET_ROUTING_INFO)
    async def get_routing_info(self, ctx: CallContext, request: wire.GetRoutingInfoRequest, payload: object):
        self._enter("GetRoutingInfo")
        current = request.known_version == self.routing.version
        return wire.GetRoutingInfoResponse(routing=None if current else self.routing)

    @rpc_method(wire.LIST_NODES)
    async def list_nodes(self, ctx: CallContext, request: object, payload: object):
        self._enter("ListNodes")
        return wire.ListNodesResponse(nodes=list(self.routing.nodes.values()))

    @rpc_method(wire.LIST_TARGETS)
    async def list_targets(self, ctx: CallContext, request: object, payload: object):
        self._enter("ListTargets")
        return wire.ListTargetsResponse(targets=list(self.routing.targets.values()))

    @rpc_method(wire.LIST_CHAINS)
    async def list_chains(self, ctx: CallContext, request: object, payload: object):
        self._enter("ListChains")
        return wire.ListChainsResponse(chains=list(self.routing.chains.values()))

    @rpc_method(wire.LIST_CHAIN_TABLES)
    async def list_chain_tables(self, ctx: CallContext, request: object, payload: object):
        self._enter("ListChainTables")
        tables = [table for versions in self.routing.chain_tables.values() for table in versions]
        return wire.ListChainTablesResponse(tables=tables)

    @rpc_method(wire.LIST_CLIENT_SESSIONS)
    async def list_client_sessions(self, ctx: CallContext, request: object, payload: object):
        self._enter("ListClientSessions")
        return wire.ListClientSessionsResponse(sessions=self.sessions)

    @rpc_method(wire.CREATE_TARGETS)
    async def create_targets(self, ctx: CallContext, request: wire.CreateTargetsRequest, payload: object):
        self._enter("CreateTargets", request)
        return wire.CreateTargetsResponse(routing_version=self._bump())

    @rpc_method(wire.CREATE_CHAINS)
    async def create_chains(self, ctx: CallContext, request: wire.CreateChainsRequest, payload: object):
        self._enter("CreateChains", request)
        return wire.CreateChainsResponse(routing_version=self._bump())

    @rpc_method(wire.CREATE_CHAIN_TABLE)
    async def create_chain_table(
        self, ctx: CallContext, request: wire.CreateChainTableRequest, payload: object
    ):
        self._enter("CreateChainTable", request)
        versions = self.routing.chain_tables.get(request.table_id, [])
        return wire.CreateChainTableResponse(table_id=request.table_id, version=len(versions) + 1)

    @rpc_method(wire.SET_NODE_ENABLED)
    async def set_node_enabled(self, ctx: CallContext, request: wire.SetNodeEnabledRequest, payload: object):
        self._enter("SetNodeEnabled", request)
        node = self._node(request.node_id)
        status = wire.NodeStatus.ACTIVE if request.enabled else wire.NodeStatus.DISABLED
        return wire.SetNodeEnabledResponse(node=msgspec.structs.replace(node, status=status))

    @rpc_method(wire.OFFLINE_TARGET)
    async def offline_target(self, ctx: CallContext, request: wire.OfflineTargetRequest, payload: object):
        self._enter("OfflineTarget", request)
        target = self._target(request.target_id)
        return wire.OfflineTargetResponse(target=msgspec.structs.replace(target, public_state=OFFLINE))

    @rpc_method(wire.REMOVE_TARGET)
    async def remove_target(self, ctx: CallContext, request: wire.RemoveTargetRequest, payload: object):
        self._enter("RemoveTarget", request)
        self._target(request.target_id)
        return wire.RemoveTargetResponse(routing_version=self._bump())

    @rpc_method(wire.UPDATE_CHAIN)
    async def update_chain(self, ctx: CallContext, request: wire.UpdateChainRequest, payload: object):
        self._enter("UpdateChain", request)
        return wire.UpdateChainResponse(chain=self._chain(request.chain_id))

    @rpc_method(wire.ROTATE_LAST_SERVING)
    async def rotate_last_serving(
        self, ctx: CallContext, request: wire.RotateLastServingRequest, payload: object
    ):
        self._enter("RotateLastServing", request)
        return wire.RotateLastServingResponse(chain=self._chain(request.chain_id))

    @rpc_method(wire.SET_PREFERRED_ORDER)
    async def set_preferred_order(
        self, ctx: CallContext, request: wire.SetPreferredOrderRequest, payload: object
    ):
        self._enter("SetPreferredOrder", request)
        chain = msgspec.structs.replace(self._chain(request.chain_id), preferred_order=request.target_ids)
        return wire.SetPreferredOrderResponse(chain=chain)

    def _node(self, node_id: int) -> wire.NodeInfo:
        if node_id not in self.routing.nodes:
            raise ThreeFSError(Code.MGMTD_NODE_NOT_FOUND, f"no node {node_id}")
        return self.routing.nodes[node_id]

    def _target(self, target_id: int) -> wire.TargetInfo:
        if target_id not in self.routing.targets:
            raise ThreeFSError(Code.MGMTD_TARGET_NOT_FOUND, f"no target {target_id}")
        return self.routing.targets[target_id]

    def _chain(self, chain_id: int) -> wire.ChainInfo:
        if chain_id not in self.routing.chains:
            raise ThreeFSError(Code.MGMTD_CHAIN_NOT_FOUND, f"no chain {chain_id}")
        return self.routing.chains[chain_id]


class ServedFake:
    """A ``FakeMgmtd`` being served; ``stop()`` cancels its server (its port then refuses)."""

    def __init__(self, fake: FakeMgmtd, scope: trio.CancelScope) -> None:
        self.fake = fake
        self.address = fake.address
        self._scope = scope

    def stop(self) -> None:
        self._scope.cancel()


async def serve_fake(nursery: trio.Nursery, fake: FakeMgmtd, secret: str = SECRET) -> ServedFake:
    """Serve ``fake`` on a free loopback port; returns once it listens."""
    server = RpcServer(secret, [fake])
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[int]) -> None:
        with scope:
            await server.serve("127.0.0.1", 0, task_status=task_status)

    port = await nursery.start(run)
    fake.address = f"127.0.0.1:{port}"
    return ServedFake(fake, scope)


class ThreadedFake:
    """``with ThreadedFake(fake) as served:`` serves ``fake`` from a thread running its own trio
    loop, for sync tests; leaving the block stops it."""

    def __init__(self, fake: FakeMgmtd, secret: str = SECRET) -> None:
        self.fake = fake
        self._secret = secret
        self._ready = threading.Event()
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self._token: trio.lowlevel.TrioToken | None = None
        self._served: ServedFake | None = None

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self._served = await serve_fake(nursery, self.fake, self._secret)
            self._ready.set()

    def __enter__(self) -> ServedFake:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake mgmtd did not start")
        assert self._served is not None
        return self._served

    def __exit__(self, *exc_info: object) -> None:
        if self._served is not None and self._token is not None:
            trio.from_thread.run_sync(self._served.stop, trio_token=self._token)
        self._thread.join(10)


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll ``predicate`` (state that has no event to wait on) until it holds."""
    with trio.fail_after(timeout_s):
        while True:
            if predicate():
                return
            await trio.sleep(0.005)


def unused_address() -> str:
    """A loopback address where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"
