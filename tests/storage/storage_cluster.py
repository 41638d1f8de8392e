"""An in-process cluster for the storage tests (imported by them; pytest puts this folder on
``sys.path``): one mgmtd (``MgmtdApp`` on the mem KV engine) and storage nodes (``StorageApp``
with in-memory stores that survive a stop, so a node can be "restarted"), all on loopback with
short heartbeat intervals, plus a test client that speaks the storage RPCs directly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
import trio
from crc32c import crc32c

from client.mgmtd import MgmtdClient
from client.routing import RoutingCache
from mgmtd.app import MgmtdApp
from mgmtd.config import MgmtdConfig
from storage.app import StorageApp
from storage.config import StorageConfig, TargetConfig
from storage.store.mem import MemChunkStore
from threefs.errors import ThreeFSError
from threefs.kv import MemEngine
from threefs.rpc import RpcClient
from threefs.wire import mgmtd as mwire
from threefs.wire import storage as wire

SECRET = "storage-test-secret"
CLUSTER = "storage-test"
CHUNK_SIZE = 64 << 10
CLIENT_ID = b"test-client-0001"


class KeptMemStore(MemChunkStore):
    """A MemChunkStore that a stopping node does not clear: the node's "disk" for a restart."""

    def close(self) -> None:
        pass


def mgmtd_config(**overrides: object) -> MgmtdConfig:
    settings: dict[str, object] = {
        "cluster_id": CLUSTER,
        "kv_url": "mem://",
        "listen_port": 0,
        "heartbeat_interval_s": 0.1,
        "heartbeat_timeout_s": 5.0,  # failover tests ask for less
        "lease_s": 5.0,
        "chain_grace_s": 1.0,  # a new chain's targets all report UPTODATE well within it
        "updater_interval_s": 0.05,
    }
    settings.update(overrides)
    return MgmtdConfig(**settings)  # type: ignore[arg-type]


def storage_config(node_id: int, mgmtd_address: str, target_ids: Iterable[int], **overrides: object):
    settings: dict[str, object] = {
        "cluster_id": CLUSTER,
        "node_id": node_id,
        "listen_port": 0,
        "mgmtd_addresses": [mgmtd_address],
        "data_dir": "/nonexistent",
        "targets": [TargetConfig(target_id=tid) for tid in target_ids],
        "routing_refresh_s": 0.5,
        "resync_interval_s": 0.2,
        "update_timeout_s": 5.0,
    }
    settings.update(overrides)
    return StorageConfig(**settings)  # type: ignore[arg-type]


def key(index: int, inode: int = 7) -> wire.ChunkKey:
    return wire.ChunkKey(inode, index)


@dataclass
class Node:
    node_id: int
    target_ids: list[int]
    stores: dict[int, KeptMemStore]
    app: StorageApp | None = None
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    @property
    def address(self) -> str:
        assert self.app is not None
        return self.app.address


class Cluster:
    """mgmtd + storage nodes ``1..n``; node ``n`` holds target ``100 + n``."""

    def __init__(self, nursery: trio.Nursery, rpc: RpcClient, mgmtd_address: str) -> None:
        self.nursery = nursery
        self.rpc = rpc
        self.mgmtd_address = mgmtd_address
        self.mgmtd = MgmtdClient([mgmtd_address], rpc=rpc)
        self.routing = RoutingCache(self.mgmtd)
        self.nodes: dict[int, Node] = {}
        self.seq = 0

    # ------------------------------------------------------------------ nodes

    async def start_node(self, node_id: int, **overrides: object) -> Node:
        node = self.nodes.get(node_id)
        if node is None:
            tid = 100 + node_id
            node = self.nodes[node_id] = Node(node_id, [tid], {tid: KeptMemStore()})
        config = storage_config(node_id, self.mgmtd_address, node.target_ids, **overrides)
        stores = node.stores
        node.app = StorageApp(
            config, SECRET, open_store=lambda tid, path: stores.setdefault(tid, KeptMemStore())
        )
        node.scope = trio.CancelScope()
        app, scope = node.app, node.scope

        async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await app.run(task_status=task_status)

        await self.nursery.start(run)
        return node

    def stop_node(self, node_id: int) -> None:
        self.nodes[node_id].scope.cancel()

    async def sync_routing(self) -> None:
        """Every running node and the test client fetch the latest routing now."""
        await self.routing.refresh()
        for node in self.nodes.values():
            if node.app is not None and not node.scope.cancel_called:
                await node.app.state.refresh_routing()

    def store(self, target_id: int) -> KeptMemStore:
        return self.nodes[target_id - 100].stores[target_id]

    def node_address(self, target_id: int) -> str:
        return self.nodes[target_id - 100].address

    # ------------------------------------------------------------------ mgmtd

    async def targets(self) -> dict[int, mwire.TargetInfo]:
        return {t.target_id: t for t in await self.mgmtd.list_targets()}

    async def chain(self, chain_id: int = 1) -> mwire.ChainInfo:
        return {c.chain_id: c for c in await self.mgmtd.list_chains()}[chain_id]

    async def wait_chain(self, expected: list[tuple[int, str]], chain_id: int = 1, timeout_s: float = 10.0):
        """Poll until the chain's ``(target, state)`` list is ``expected`` and every SERVING
        target reports UPTODATE; returns the chain."""
        seen: object = None
        with trio.move_on_after(timeout_s):
            while True:
                chain = await self.chain(chain_id)
                targets = await self.targets()
                states = [(t.target_id, t.public_state.name) for t in chain.targets]
                locals_ = {t.target_id: targets[t.target_id].local_state.name for t in chain.targets}
                seen = (states, locals_)
                serving_current = all(
                    locals_[tid] == "UPTODATE" for tid, state in states if state == "SERVING"
                )
                if states == expected and serving_current:
                    await self.routing.refresh()
                    return chain
                await trio.sleep(0.02)
        pytest.fail(f"chain {chain_id} never became {expected}; last {seen}")

    async def create_chain(self, chain_id: int, target_ids: list[int]) -> mwire.ChainInfo:
        """Declare the targets, wait for their nodes to report them, create the chain, wait until
        it serves."""
        node_of = {tid: node.node_id for node in self.nodes.values() for tid in node.target_ids}
        await self.mgmtd.create_targets(
            [mwire.TargetInfo(target_id=t, node_id=node_of[t]) for t in target_ids]
        )
        with trio.fail_after(10):
            while True:
                known = await self.targets()
                if all(known[t].local_state == mwire.LocalTargetState.ONLINE for t in target_ids):
                    break
                await trio.sleep(0.02)
        await self.mgmtd.create_chains([mwire.ChainSpec(chain_id=chain_id, target_ids=target_ids)])
        return await self.wait_chain([(t, "SERVING") for t in target_ids], chain_id)

    # ------------------------------------------------------------------ storage calls

    def tag(self, channel: int = 0) -> wire.RequestTag:
        self.seq += 1
        return wire.RequestTag(client_id=CLIENT_ID, channel=channel, seq=self.seq)

    def update_request(
        self,
        chunk: wire.ChunkKey,
        data: bytes = b"",
        *,
        offset: int = 0,
        update_type: wire.UpdateType = wire.UpdateType.WRITE,
        chain_id: int = 1,
        chain_version: int | None = None,
        tag: wire.RequestTag | None = None,
        truncate_to: int = 0,
        crc: int | None = None,
    ) -> wire.UpdateChunkRequest:
        version = chain_version if chain_version is not None else self.routing.chain(chain_id).chain_version
        return wire.UpdateChunkRequest(
            tag=tag or self.tag(),
            chain_id=chain_id,
            chain_version=version,
            chunk=chunk,
            chunk_size=CHUNK_SIZE,
            update_type=update_type,
            offset=offset,
            length=len(data),
            crc32c=crc32c(data) if crc is None else crc,
            truncate_to=truncate_to,
        )

    def head_address(self, chain_id: int = 1) -> str:
        return self.routing.target_address(self.routing.head(chain_id).target_id)

    async def update(
        self, request: wire.UpdateChunkRequest, data: bytes = b"", *, address: str | None = None
    ) -> wire.UpdateChunkResponse:
        address = address or self.head_address(request.chain_id)
        reply, _ = await self.rpc.call(address, wire.UPDATE_CHUNK, request, payload=data, timeout_s=5)
        return reply

    async def write(self, chunk: wire.ChunkKey, data: bytes, offset: int = 0, chain_id: int = 1, **kw):
        return await self.update(
            self.update_request(chunk, data, offset=offset, chain_id=chain_id, **kw), data
        )

    async def write_retrying(
        self, chunk: wire.ChunkKey, data: bytes, chain_id: int = 1, timeout_s: float = 20
    ):
        """Write until acknowledged, with the same tag, refreshing routing after each failure."""
        tag = self.tag()
        with trio.fail_after(timeout_s):
            while True:
                try:
                    return await self.write(chunk, data, chain_id=chain_id, tag=tag)
                except ThreeFSError as exc:
                    if not exc.retryable:
                        raise
                    await trio.sleep(0.05)
                    await self.routing.refresh()

    async def read(
        self,
        target_id: int,
        chunk: wire.ChunkKey,
        offset: int = 0,
        length: int = CHUNK_SIZE,
        chain_id: int = 1,
    ) -> tuple[wire.ReadResult, bytes]:
        io = wire.ReadIO(
            chain_id=chain_id,
            chain_version=self.routing.chain(chain_id).chain_version,
            target_id=target_id,
            chunk=chunk,
            offset=offset,
            length=length,
        )
        reply, payload = await self.rpc.call(
            self.node_address(target_id), wire.BATCH_READ, wire.BatchReadRequest(reads=[io]), timeout_s=5
        )
        return reply.results[0], bytes(payload)

    async def dump(self, target_id: int) -> list[wire.ChunkMetaInfo]:
        request = wire.DumpChunkMetaRequest(target_id=target_id)
        reply, _ = await self.rpc.call(
            self.node_address(target_id), wire.DUMP_CHUNK_META, request, timeout_s=5
        )
        return reply.chunks


@asynccontextmanager
async def running_cluster(
    nodes: int = 3, chain: list[int] | None = None, **mgmtd_overrides: object
) -> AsyncIterator[Cluster]:
    """mgmtd, ``nodes`` storage nodes and chain 1 over ``chain`` (default: every node's target)."""
    async with trio.open_nursery() as nursery:
        config = mgmtd_config(**mgmtd_overrides)
        mgmtd = await nursery.start(MgmtdApp(config, SECRET, MemEngine()).run)
        async with RpcClient(SECRET) as rpc:
            cluster = Cluster(nursery, rpc, f"127.0.0.1:{mgmtd.port}")
            for node_id in range(1, nodes + 1):
                await cluster.start_node(node_id)
            await cluster.create_chain(1, chain or [100 + n for n in range(1, nodes + 1)])
            yield cluster
        nursery.cancel_scope.cancel()


def payload(seed: int, size: int = CHUNK_SIZE) -> bytes:
    """Deterministic bytes for ``seed`` (``size`` a multiple of 8)."""
    return seed.to_bytes(8, "little") * (size // 8)
