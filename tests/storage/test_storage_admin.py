"""The storage admin and inspection RPCs (SpaceInfo, CreateTarget, RemoveTarget, DumpChunkMeta
paging) and the metrics endpoint, on an in-process cluster."""

from __future__ import annotations

import pytest
import trio
from storage_cluster import CHUNK_SIZE, key, payload, running_cluster

from threefs.errors import Code, ThreeFSError
from threefs.wire import storage as wire


async def test_space_dump_paging_and_target_admin():
    async with running_cluster(nodes=2) as cluster:
        for index in range(5):
            await cluster.write(key(index), payload(index))
        address = cluster.node_address(101)
        space, _ = await cluster.rpc.call(address, wire.SPACE_INFO, wire.SpaceInfoRequest())
        assert [(t.target_id, t.chunk_count, t.used_bytes) for t in space.targets] == [
            (101, 5, 5 * CHUNK_SIZE)
        ]

        pages, after = [], None
        while True:
            request = wire.DumpChunkMetaRequest(target_id=101, after=after, limit=2)
            reply, _ = await cluster.rpc.call(address, wire.DUMP_CHUNK_META, request)
            pages.append([m.chunk.index for m in reply.chunks])
            if not reply.more:
                break
            after = reply.chunks[-1].chunk
        assert pages == [[0, 1], [2, 3], [4]]

        created, _ = await cluster.rpc.call(
            address, wire.CREATE_TARGET, wire.CreateTargetRequest(target_id=150)
        )
        assert created.path.endswith("target-150")
        again, _ = await cluster.rpc.call(
            address, wire.CREATE_TARGET, wire.CreateTargetRequest(target_id=150)
        )
        assert again == created  # a retried creation
        with pytest.raises(ThreeFSError) as elsewhere:
            request = wire.CreateTargetRequest(target_id=150, path="/elsewhere/t150")
            await cluster.rpc.call(address, wire.CREATE_TARGET, request)
        assert elsewhere.value.code == Code.ALREADY_EXISTS
        space, _ = await cluster.rpc.call(address, wire.SPACE_INFO, wire.SpaceInfoRequest(target_ids=[150]))
        assert space.targets[0].chunk_count == 0

        with pytest.raises(ThreeFSError) as in_chain:
            await cluster.rpc.call(address, wire.REMOVE_TARGET, wire.RemoveTargetRequest(target_id=101))
        assert in_chain.value.code == Code.INVALID_ARG
        removed, _ = await cluster.rpc.call(
            address, wire.REMOVE_TARGET, wire.RemoveTargetRequest(target_id=150)
        )
        assert removed.removed_chunks == 0
        with pytest.raises(ThreeFSError) as gone:
            await cluster.rpc.call(address, wire.SPACE_INFO, wire.SpaceInfoRequest(target_ids=[150]))
        assert gone.value.code == Code.STORAGE_TARGET_NOT_FOUND


async def test_metrics_endpoint():
    async with running_cluster(nodes=1) as cluster:
        node = await cluster.start_node(5, metrics_port=0)
        await cluster.write(key(0), b"counted")
        await cluster.read(101, key(0))
        stream = await trio.open_tcp_stream("127.0.0.1", node.app.metrics_port)
        await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        body = b""
        while chunk := await stream.receive_some(65536):
            body += chunk
        await stream.aclose()
        text = body.decode()
        assert text.startswith("HTTP/1.1 200 OK")
        assert 'threefs_storage_target_local_state{state="ONLINE",target="105"} 1.0' in text
        writer = cluster.nodes[1].app.state.metrics.render().decode()
        assert 'threefs_storage_write_ops_total{target="101"} 1.0' in writer
        assert 'threefs_storage_read_bytes_total{target="101"} 7.0' in writer
        assert 'threefs_storage_requests_total{method="UpdateChunk",result="ok"} 1.0' in writer
