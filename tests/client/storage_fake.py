"""A fake storage service for the storage-client tests: ``FakeStorageNode`` services (one real
``RpcServer`` on loopback per storage node) over one in-memory ``FakeStorage``, routed by the
``FakeMgmtd`` routing it shares (change ``mgmtd.routing`` and both sides see it).

It keeps the contract the client relies on (DESIGN section 7, threefs/wire/storage.py): chain
version checks, updates only at the head (applied to every replica at once), idempotent tags,
missing chunks read as holes, CRC32C per read result. Test knobs: ``failures[method]`` (errors
raised, one per call), ``read_codes`` (an error code per ReadIO result, one per read),
``corrupt_reads`` (reads answered with a wrong CRC32C), ``delay_s`` (each call sleeps first).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import crc32c
import msgspec
import trio
from mgmtd_fake import FakeMgmtd, serve_fake

from threefs.errors import Code, ThreeFSError
from threefs.rpc import CallContext, RpcServer, RpcService, rpc_method
from threefs.wire import mgmtd as mwire
from threefs.wire import storage as wire
from threefs.wire.storage import ChunkKey

SERVING = mwire.PublicTargetState.SERVING
STORAGE_NODES = (10, 11, 12)


def storage_routing(version: int = 5) -> mwire.RoutingInfo:
    """Storage nodes 10, 11, 12 (addresses filled in once served); target ``n*10 + c`` is chain
    ``c``'s replica on node ``n``. Chains 1-4 over all three nodes, heads rotating: chain 1 is
    101, 111, 121; chain 2 is 112, 122, 102; chain 3 is 123, 103, 113; chain 4 is 104, 114, 124.
    Table 1 version 1 holds chains 1-4; table 2 version 1 holds chain 1 only."""
    nodes = {
        n: mwire.NodeInfo(node_id=n, node_type=mwire.NodeType.STORAGE, hostname=f"s{n}")
        for n in STORAGE_NODES
    }
    chains: dict[int, mwire.ChainInfo] = {}
    targets: dict[int, mwire.TargetInfo] = {}
    for chain_id in (1, 2, 3, 4):
        rotate = (chain_id - 1) % 3
        order = list(STORAGE_NODES[rotate:] + STORAGE_NODES[:rotate])
        ids = [n * 10 + chain_id for n in order]
        for node_id, target_id in zip(order, ids, strict=True):
            targets[target_id] = mwire.TargetInfo(
                target_id=target_id,
                node_id=node_id,
                chain_id=chain_id,
                public_state=SERVING,
                local_state=mwire.LocalTargetState.UPTODATE,
            )
        chains[chain_id] = mwire.ChainInfo(
            chain_id=chain_id, chain_version=2, targets=[mwire.ChainTarget(t, SERVING) for t in ids]
        )
    tables = {
        1: [mwire.ChainTable(table_id=1, version=1, chain_ids=[1, 2, 3, 4])],
        2: [mwire.ChainTable(table_id=2, version=1, chain_ids=[1])],
    }
    return mwire.RoutingInfo(
        version=version, cluster_id="test", nodes=nodes, chain_tables=tables, chains=chains, targets=targets
    )


@dataclass
class FakeChunk:
    data: bytearray
    chunk_size: int
    chain_version: int
    commit_version: int = 1


@dataclass
class FakeStorage:
    """Every fake node's state. ``calls`` records ``(method, node_id, request)``."""

    mgmtd: FakeMgmtd
    chunks: dict[int, dict[ChunkKey, FakeChunk]] = field(default_factory=dict)
    failures: dict[str, list[ThreeFSError]] = field(default_factory=dict)
    read_codes: list[Code] = field(default_factory=list)
    corrupt_reads: int = 0
    delay_s: float = 0.0
    calls: list[tuple[str, int, msgspec.Struct]] = field(default_factory=list)
    applied: dict[wire.RequestTag, msgspec.Struct] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    created_targets: list[tuple[int, wire.CreateTargetRequest]] = field(default_factory=list)
    removed_targets: list[tuple[int, int]] = field(default_factory=list)

    @property
    def routing(self) -> mwire.RoutingInfo:
        return self.mgmtd.routing

    def target_chunks(self, target_id: int) -> dict[ChunkKey, FakeChunk]:
        return self.chunks.setdefault(target_id, {})

    def chain_replicas(self, chain_id: int) -> list[int]:
        return [t.target_id for t in self.routing.chains[chain_id].targets if t.public_state == SERVING]

    def methods(self, name: str) -> list[tuple[int, msgspec.Struct]]:
        return [(node, request) for method, node, request in self.calls if method == name]

    def chunk_data(self, chain_id: int, inode: int, index: int) -> bytes | None:
        """The chunk's bytes on the chain's head (every replica holds the same)."""
        chunk = self.target_chunks(self.chain_replicas(chain_id)[0]).get(ChunkKey(inode, index))
        return None if chunk is None else bytes(chunk.data)


class FakeStorageNode(RpcService):
    """Storage node ``node_id`` of a ``FakeStorage``."""

    spec = wire.STORAGE_SERVICE

    def __init__(self, storage: FakeStorage, node_id: int) -> None:
        self.storage = storage
        self.node_id = node_id

    async def _enter(self, name: str, request: msgspec.Struct) -> None:
        storage = self.storage
        storage.calls.append((name, self.node_id, request))
        storage.in_flight += 1
        storage.max_in_flight = max(storage.max_in_flight, storage.in_flight)
        try:
            if storage.delay_s:
                await trio.sleep(storage.delay_s)
        finally:
            storage.in_flight -= 1
        pending = storage.failures.get(name)
        if pending:
            raise pending.pop(0)

    def _check_chain(self, chain_id: int, chain_version: int) -> None:
        chain = self.storage.routing.chains.get(chain_id)
        if chain is None or chain.chain_version != chain_version:
            have = chain.chain_version if chain else 0
            raise ThreeFSError(
                Code.STORAGE_STALE_CHAIN_VERSION, f"chain {chain_id} version {chain_version} != {have}"
            )

    def _check_head(self, chain_id: int) -> None:
        head = self.storage.chain_replicas(chain_id)[0]
        if self.storage.routing.targets[head].node_id != self.node_id:
            raise ThreeFSError(
                Code.STORAGE_NOT_HEAD, f"node {self.node_id} holds no head of chain {chain_id}"
            )

    def _check_target(self, target_id: int) -> None:
        target = self.storage.routing.targets.get(target_id)
        if target is None or target.node_id != self.node_id:
            raise ThreeFSError(Code.STORAGE_TARGET_NOT_FOUND, f"no target {target_id} on node {self.node_id}")

    @rpc_method(wire.UPDATE_CHUNK)
    async def update_chunk(self, ctx: CallContext, request: wire.UpdateChunkRequest, payload: bytes):
        await self._enter("UpdateChunk", request)
        self._check_chain(request.chain_id, request.chain_version)
        self._check_head(request.chain_id)
        if request.tag in self.storage.applied:
            return self.storage.applied[request.tag]
        if request.update_type == wire.UpdateType.WRITE:
            if len(payload) != request.length or crc32c.crc32c(payload) != request.crc32c:
                raise ThreeFSError(Code.STORAGE_CHECKSUM_MISMATCH, "payload does not match its CRC32C")
            if request.offset + request.length > request.chunk_size:
                raise ThreeFSError(Code.STORAGE_BAD_OFFSET, "write past the chunk end")
        response = wire.UpdateChunkResponse(commit_version=0, length=0, crc32c=0)
        for target_id in self.storage.chain_replicas(request.chain_id):
            response = self._apply(self.storage.target_chunks(target_id), request, payload)
        self.storage.applied[request.tag] = response
        return response

    @staticmethod
    def _apply(
        chunks: dict[ChunkKey, FakeChunk], request: wire.UpdateChunkRequest, payload: bytes
    ) -> wire.UpdateChunkResponse:
        if request.update_type == wire.UpdateType.REMOVE:
            chunks.pop(request.chunk, None)
            return wire.UpdateChunkResponse(commit_version=0, length=0, crc32c=0)
        chunk = chunks.setdefault(
            request.chunk, FakeChunk(bytearray(), request.chunk_size, request.chain_version, 0)
        )
        if request.update_type == wire.UpdateType.WRITE:
            end = request.offset + request.length
            if len(chunk.data) < end:
                chunk.data.extend(bytes(end - len(chunk.data)))
            chunk.data[request.offset : end] = payload
        elif request.update_type == wire.UpdateType.TRUNCATE:
            del chunk.data[request.truncate_to :]
            chunk.data.extend(bytes(request.truncate_to - len(chunk.data)))
        chunk.commit_version += 1
        chunk.chain_version = request.chain_version
        return wire.UpdateChunkResponse(
            commit_version=chunk.commit_version, length=len(chunk.data), crc32c=crc32c.crc32c(chunk.data)
        )

    @rpc_method(wire.BATCH_READ)
    async def batch_read(self, ctx: CallContext, request: wire.BatchReadRequest, payload: bytes):
        await self._enter("BatchRead", request)
        results: list[wire.ReadResult] = []
        out = bytearray()
        for io in request.reads:
            try:
                self._check_target(io.target_id)
                self._check_chain(io.chain_id, io.chain_version)
                if self.storage.read_codes:
                    code = self.storage.read_codes.pop(0)
                    raise ThreeFSError(code, f"injected {code.name}")
            except ThreeFSError as exc:
                results.append(wire.ReadResult(code=exc.code, message=exc.message))
                continue
            chunk = self.storage.target_chunks(io.target_id).get(io.chunk)
            data = b"" if chunk is None else bytes(chunk.data[io.offset : io.offset + io.length])
            checksum = crc32c.crc32c(data)
            if self.storage.corrupt_reads:
                self.storage.corrupt_reads -= 1
                checksum ^= 1
            version = chunk.commit_version if chunk else 0
            results.append(wire.ReadResult(length=len(data), crc32c=checksum, commit_version=version))
            out += data
        return wire.BatchReadResponse(results=results), bytes(out)

    @rpc_method(wire.QUERY_LAST_CHUNK)
    async def query_last_chunk(self, ctx: CallContext, request: wire.QueryLastChunkRequest, payload: bytes):
        await self._enter("QueryLastChunk", request)
        self._check_target(request.target_id)
        self._check_chain(request.chain_id, request.chain_version)
        end = request.end_index or 2**32
        keys = [
            key
            for key in self.storage.target_chunks(request.target_id)
            if key.inode == request.inode and request.begin_index <= key.index < end
        ]
        if not keys:
            return wire.QueryLastChunkResponse(found=False)
        last = max(keys)
        length = len(self.storage.target_chunks(request.target_id)[last].data)
        return wire.QueryLastChunkResponse(
            found=True, last_index=last.index, last_length=length, chunk_count=len(keys)
        )

    @rpc_method(wire.REMOVE_CHUNKS)
    async def remove_chunks(self, ctx: CallContext, request: wire.RemoveChunksRequest, payload: bytes):
        await self._enter("RemoveChunks", request)
        self._check_chain(request.chain_id, request.chain_version)
        self._check_head(request.chain_id)
        end = request.end_index or 2**32
        removed = 0
        for target_id in self.storage.chain_replicas(request.chain_id):
            chunks = self.storage.target_chunks(target_id)
            doomed = [k for k in chunks if k.inode == request.inode and request.begin_index <= k.index < end]
            for key in doomed:
                del chunks[key]
            removed = len(doomed)
        return wire.RemoveChunksResponse(removed=removed)

    @rpc_method(wire.DUMP_CHUNK_META)
    async def dump_chunk_meta(self, ctx: CallContext, request: wire.DumpChunkMetaRequest, payload: bytes):
        await self._enter("DumpChunkMeta", request)
        self._check_target(request.target_id)
        chunks = self.storage.target_chunks(request.target_id)
        keys = sorted(
            key
            for key in chunks
            if (request.inode is None or key.inode == request.inode)
            and (request.after is None or key > request.after)
        )
        page = keys[: request.limit] if request.limit else keys
        metas = [_meta(key, chunks[key]) for key in page]
        return wire.DumpChunkMetaResponse(chunks=metas, more=len(page) < len(keys))

    @rpc_method(wire.CREATE_TARGET)
    async def create_target(self, ctx: CallContext, request: wire.CreateTargetRequest, payload: bytes):
        await self._enter("CreateTarget", request)
        self.storage.created_targets.append((self.node_id, request))
        return wire.CreateTargetResponse(target_id=request.target_id, path=request.path or "/data/default")

    @rpc_method(wire.REMOVE_TARGET)
    async def remove_target(self, ctx: CallContext, request: wire.RemoveTargetRequest, payload: bytes):
        await self._enter("RemoveTarget", request)
        self.storage.removed_targets.append((self.node_id, request.target_id))
        removed = len(self.storage.chunks.pop(request.target_id, {}))
        return wire.RemoveTargetResponse(removed_chunks=removed)


def _meta(key: ChunkKey, chunk: FakeChunk) -> wire.ChunkMetaInfo:
    return wire.ChunkMetaInfo(
        chunk=key,
        chunk_size=chunk.chunk_size,
        chain_version=chunk.chain_version,
        update_version=chunk.commit_version,
        commit_version=chunk.commit_version,
        length=len(chunk.data),
        crc32c=crc32c.crc32c(chunk.data),
    )


async def serve_storage(
    nursery: trio.Nursery, storage: FakeStorage, secret: str, node_ids: Iterable[int] = STORAGE_NODES
) -> dict[int, str]:
    """Serve a ``FakeStorageNode`` per node on loopback and write each address into the routing
    (bumping its version); returns ``node_id -> address``."""
    addresses: dict[int, str] = {}
    for node_id in node_ids:
        server = RpcServer(secret, [FakeStorageNode(storage, node_id)])
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        addresses[node_id] = f"127.0.0.1:{port}"
    routing = storage.routing
    nodes = dict(routing.nodes)
    for node_id, address in addresses.items():
        nodes[node_id] = msgspec.structs.replace(nodes[node_id], addresses=[address])
    storage.mgmtd.routing = msgspec.structs.replace(routing, nodes=nodes, version=routing.version + 1)
    return addresses


def bump_chain(storage: FakeStorage, chain_id: int, targets: list[int] | None = None) -> None:
    """A new version of chain ``chain_id`` (optionally with new ``targets``, head first, all
    SERVING) and of the routing info."""
    routing = storage.routing
    chain = routing.chains[chain_id]
    replicas = chain.targets if targets is None else [mwire.ChainTarget(t, SERVING) for t in targets]
    chains = dict(routing.chains)
    chains[chain_id] = msgspec.structs.replace(chain, chain_version=chain.chain_version + 1, targets=replicas)
    storage.mgmtd.routing = msgspec.structs.replace(routing, chains=chains, version=routing.version + 1)


class ThreadedStorageCluster:
    """``with ThreadedStorageCluster(mgmtd, storage):`` serves the fake mgmtd and the fake storage
    nodes from a thread running its own trio loop, for sync tests (the CLI runs ``trio.run``)."""

    def __init__(self, mgmtd: FakeMgmtd, storage: FakeStorage, secret: str) -> None:
        self.mgmtd = mgmtd
        self.storage = storage
        self._secret = secret
        self._ready = threading.Event()
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self.addresses: dict[int, str] = {}

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self._scope = nursery.cancel_scope
            await serve_fake(nursery, self.mgmtd, self._secret)
            self.addresses = await serve_storage(nursery, self.storage, self._secret)
            self._ready.set()

    def __enter__(self) -> ThreadedStorageCluster:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake cluster did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._scope is not None and self._token is not None:
            trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join(10)
