"""StorageClient end to end: a real mgmtd and three real storage processes (replication 3) on
loopback (``threefs.testing.cluster.LocalCluster``); every byte written is read back, from
every replica, truncate/remove/length agree with what was written, and reads go on when a
storage node dies."""

from __future__ import annotations

import hashlib
import importlib.util
import os

import pytest
import trio

from client.cli import main as cli_main
from client.config import MgmtdClientConfig, StorageClientConfig
from client.mgmtd import MgmtdClient
from client.routing import RoutingCache
from client.storage import StorageClient
from threefs.errors import Code, ThreeFSError
from threefs.layout import Layout, stripe_positions
from threefs.rpc import RpcClient
from threefs.testing.cluster import ClusterError, LocalCluster

pytestmark = pytest.mark.slow
needs_storage = pytest.mark.skipif(
    importlib.util.find_spec("storage.main") is None, reason="no storage service (storage.main) yet"
)

CHUNK = 64 << 10


def pattern(length: int, salt: int) -> bytes:
    block = hashlib.sha256(salt.to_bytes(8, "little")).digest() * (CHUNK // 32 + 1)
    return (block * (length // len(block) + 1))[:length]


@needs_storage
async def test_write_read_truncate_remove_on_a_real_cluster(tmp_path, capsys):
    async with LocalCluster(tmp_path, storage_nodes=3, targets_per_node=1, replication=3) as cluster:
        async with RpcClient(cluster.secret) as rpc:
            mgmtd = MgmtdClient(
                [cluster.mgmtd_address], rpc=rpc, config=MgmtdClientConfig(request_timeout_s=10)
            )
            routing = RoutingCache(mgmtd)
            await routing.refresh()
            client = StorageClient(rpc, routing, StorageClientConfig(request_timeout_s=20))
            layout = Layout(
                table_id=1,
                table_version=cluster.table_version,
                chunk_size=CHUNK,
                stripe_size=len(cluster.chain_ids),
                seed=5,
            )
            files = {inode: pattern(3 * CHUNK + 1000 * inode, inode) for inode in (1, 2, 3, 4)}

            async def write(inode: int) -> None:
                await client.write(inode, layout, 0, files[inode][: CHUNK + 10])
                await client.write(inode, layout, CHUNK + 10, files[inode][CHUNK + 10 :])

            async with trio.open_nursery() as nursery:
                for inode in files:
                    nursery.start_soon(write, inode)
            for inode, data in files.items():
                for _ in range(3):  # round-robin: every replica answers once
                    assert await client.read(inode, layout, 0, len(data)) == data
                assert await client.file_length_hint(inode, layout) == len(data)
            assert await client.read(99, layout, 0, 100) == bytes(100)  # no such file: a hole

            await client.truncate(1, layout, len(files[1]), CHUNK + 7)
            assert await client.file_length_hint(1, layout) == CHUNK + 7
            assert await client.read(1, layout, 0, 2 * CHUNK) == files[1][: CHUNK + 7] + bytes(CHUNK - 7)
            assert await client.remove(2, layout) == 4
            assert await client.file_length_hint(2, layout) == 0
            assert await client.read(3, layout, 0, len(files[3])) == files[3]

        address = cluster.mgmtd_address
        argv = ["admin", "--mgmtd", address, "--secret-file", str(cluster.secret_file), "--timeout", "10"]
        position = stripe_positions(layout, len(cluster.chain_ids))[0]
        chain = routing.chain_id_at(1, cluster.table_version, position)
        capsys.readouterr()
        status = await trio.to_thread.run_sync(
            cli_main, [*argv, "query-chunk", "--chain", str(chain), "--inode", "3", "--index", "0"]
        )
        out = capsys.readouterr().out
        assert status == 0 and "serving replicas agree" in out, out
        assert out.count(f" {CHUNK} ") == 3, out  # every replica holds the whole first chunk

        # A storage node dies: until mgmtd notices, reads sent to it fail to connect and are
        # retried on the other replicas.
        cluster.processes["storage-13"].process.kill()
        async with RpcClient(cluster.secret) as rpc:
            routing = RoutingCache(MgmtdClient([cluster.mgmtd_address], rpc=rpc))
            await routing.refresh()
            client = StorageClient(rpc, routing, StorageClientConfig(request_timeout_s=20))
            for inode in (3, 4):
                for _ in range(3):
                    assert await client.read(inode, layout, 0, len(files[inode])) == files[inode]
            assert client.stats.retries > 0


@needs_storage
async def test_a_chunk_file_damaged_on_disk_is_caught_by_the_reader(tmp_path):
    """Whole-chunk reads leave the storage node with sendfile, unchecked there: the client's
    end-to-end CRC32C check (against the checksum stored at write time) is what catches rot."""
    async with LocalCluster(tmp_path, storage_nodes=1, targets_per_node=1, replication=1) as cluster:
        async with RpcClient(cluster.secret) as rpc:
            routing = RoutingCache(MgmtdClient([cluster.mgmtd_address], rpc=rpc))
            await routing.refresh()
            client = StorageClient(rpc, routing, StorageClientConfig(request_timeout_s=5))
            layout = Layout(table_id=1, table_version=cluster.table_version, chunk_size=CHUNK, stripe_size=1)
            data = pattern(2 * CHUNK, 9)
            await client.write(7, layout, 0, data)
            assert await client.read(7, layout, 0, len(data)) == data
            files = sorted(p for p in tmp_path.rglob("data/*/*/*") if p.is_file())
            assert len(files) == 2, files
            fd = os.open(files[0], os.O_RDWR)  # rot in place: same length, one bit flipped
            try:
                os.pwrite(fd, bytes([os.pread(fd, 1, 0)[0] ^ 0x10]), 0)
            finally:
                os.close(fd)
            with pytest.raises(ThreeFSError) as caught:
                await client.read(7, layout, 0, len(data))
            assert caught.value.code == Code.STORAGE_CHECKSUM_MISMATCH


async def test_a_node_that_fails_to_start_stops_the_cluster_with_its_log(tmp_path):
    cluster = LocalCluster(
        tmp_path, storage_nodes=1, replication=1, storage_config_extra="no_such_key = 1\n", start_timeout_s=30
    )
    with pytest.raises(ClusterError) as caught:
        await cluster.start()
    assert "storage-11 exited with status" in str(caught.value)
    assert all(node.process.poll() is not None for node in cluster.processes.values())
    assert cluster.processes["mgmtd"].process.returncode == 0  # stopped by SIGTERM, cleanly
