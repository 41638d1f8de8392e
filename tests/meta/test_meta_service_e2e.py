"""The meta service as real processes (``LocalCluster``: mgmtd, one storage node, one meta
server): files made through ``client.meta`` and written through ``client.storage``; lengths
from hints and, without hints, from the chunks; truncation cuts chunks on storage; unlinked
files lose their chunks to GC (checked on the storage side); write sessions of a client that
stops heartbeating are pruned."""

from __future__ import annotations

import time

import pytest
import trio

from client.meta import MetaClient
from client.mgmtd import MgmtdClient
from client.routing import RoutingCache
from client.storage import StorageClient
from threefs.errors import Code, ThreeFSError
from threefs.rpc import RpcClient
from threefs.testing.cluster import LocalCluster
from threefs.wire import storage as swire
from threefs.wire.meta import Caller, OpenFlags
from threefs.wire.mgmtd import HeartbeatRequest, NodeType

pytestmark = pytest.mark.slow

ROOT = Caller(uid=0, gid=0, admin=True)
CHUNK = 64 << 10


async def chunks_on_storage(rpc: RpcClient, cluster: LocalCluster, inode: int) -> int:
    """How many chunks of ``inode`` the storage node's targets hold (DumpChunkMeta)."""
    count = 0
    for node_id, address in cluster.storage_addresses.items():
        for target_id in cluster.target_ids(node_id):
            request = swire.DumpChunkMetaRequest(target_id=target_id, inode=inode)
            response, _ = await rpc.call(address, swire.DUMP_CHUNK_META, request, timeout_s=5)
            count += len(response.chunks)
    return count


async def eventually(check, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Poll ``check`` (async, -> bool) until it holds; fails after ``timeout_s``."""
    with trio.fail_after(timeout_s):
        while True:
            if await check():
                return
            await trio.sleep(0.1)


async def test_files_through_meta_and_storage_and_gc_removes_the_chunks(tmp_path):
    config = f"default_chunk_size = {CHUNK}\n"
    async with (
        LocalCluster(tmp_path, storage_nodes=1, replication=1, meta_config_extra=config) as cluster,
        RpcClient(cluster.secret) as rpc,
    ):
        routing = RoutingCache(MgmtdClient([cluster.mgmtd_address], rpc=rpc))
        await routing.refresh()
        meta = MetaClient(rpc, routing=routing, caller=ROOT)
        storage = StorageClient(rpc, routing)

        await meta.mkdir("/data/sub", recursive=True)
        opened = await meta.create("/data/sub/f")
        inode = opened.inode
        assert inode.layout is not None and inode.layout.chunk_size == CHUNK
        data = bytes(range(256)) * 1000  # 256000 bytes: 4 chunks
        await storage.write(inode.id, inode.layout, 0, data)
        closed = await meta.close(inode.id, opened.session_id, length_hint=len(data), wrote=True)
        assert closed.length == len(data)
        assert (await meta.stat("/data/sub/f")).length == len(data)
        assert [e.name for e in await meta.list_all("/data/sub")] == [b"f"]
        assert await chunks_on_storage(rpc, cluster, inode.id) == 4

        # a writer that closes without a hint: the length comes from the chunks
        again = await meta.open("/data/sub/f", OpenFlags.WRITE)
        await storage.write(inode.id, inode.layout, len(data), b"x" * 100)
        assert (await meta.close(inode.id, again.session_id, wrote=True)).length == len(data) + 100
        assert (await meta.stat("/data/sub/f")).length == len(data) + 100

        # truncation cuts the chunks before meta records the length
        cut = await meta.set_attr("/data/sub/f", length=CHUNK + 10)
        assert cut.length == CHUNK + 10
        assert await storage.file_length_hint(inode.id, inode.layout) == CHUNK + 10
        assert await chunks_on_storage(rpc, cluster, inode.id) == 2
        truncated = await meta.open("/data/sub/f", OpenFlags.WRITE | OpenFlags.TRUNCATE)
        assert truncated.inode.length == 0
        assert await chunks_on_storage(rpc, cluster, inode.id) == 0
        await storage.write(inode.id, inode.layout, 0, data[:1000])
        await meta.close(inode.id, truncated.session_id, length_hint=1000, wrote=True)
        assert await chunks_on_storage(rpc, cluster, inode.id) == 1

        statfs = await meta.statfs()
        assert statfs.capacity_bytes > 0 and statfs.inodes_used > 0

        # unlink: queued for GC (delay 0 in LocalCluster), and the chunks go on the storage side
        removed = await meta.unlink("/data/sub/f")
        assert removed.queued_for_gc == 1
        with pytest.raises(ThreeFSError) as caught:
            await meta.stat("/data/sub/f")
        assert caught.value.code == Code.META_NOT_FOUND

        async def collected() -> bool:
            return not (await meta.gc_list()).jobs and await chunks_on_storage(rpc, cluster, inode.id) == 0

        await eventually(collected)
        assert (await meta.fsck()).problems == []


async def test_sessions_of_a_client_that_stops_heartbeating_are_pruned(tmp_path):
    client_node = 5001
    config = f"default_chunk_size = {CHUNK}\n"
    async with (
        LocalCluster(tmp_path, storage_nodes=1, replication=1, meta_config_extra=config) as cluster,
        RpcClient(cluster.secret) as rpc,
    ):
        mgmtd = MgmtdClient([cluster.mgmtd_address], rpc=rpc)
        routing = RoutingCache(mgmtd)
        await routing.refresh()
        started_ms = int(time.time() * 1000)

        async def beat(seq: int) -> None:
            await mgmtd.heartbeat(
                HeartbeatRequest(
                    cluster_id=cluster.cluster_id,
                    node_id=client_node,
                    node_type=NodeType.CLIENT,
                    seq=seq,
                    sent_ms=int(time.time() * 1000),
                    started_ms=started_ms,
                )
            )

        await beat(1)
        meta = MetaClient(rpc, routing=routing, caller=ROOT, client_node=client_node)
        storage = StorageClient(rpc, routing)
        kept = await meta.create("/kept")
        doomed = await meta.create("/doomed")
        for opened in (kept, doomed):
            assert opened.inode.layout is not None
            await storage.write(opened.inode.id, opened.inode.layout, 0, b"y" * 5000)
        await meta.unlink("/doomed")  # open for writing: stays until its session goes
        assert (await meta.gc_list()).jobs == []
        assert (await meta.stat("/kept")).length == 0  # the writer never reported

        # the client crashes: no more heartbeats; mgmtd fails it, meta prunes its sessions,
        # the length of /kept comes from storage and /doomed goes to GC
        async def recovered() -> bool:
            return (await meta.stat("/kept")).length == 5000

        await eventually(recovered, timeout_s=20)

        async def collected() -> bool:
            return await chunks_on_storage(rpc, cluster, doomed.inode.id) == 0

        await eventually(collected)
        with pytest.raises(ThreeFSError) as caught:
            await meta.close(kept.inode.id, kept.session_id, length_hint=5000)
        assert caught.value.code == Code.META_STALE_SESSION
        assert (await meta.fsck()).problems == []
