"""A full disk: a target below its free-space reserve refuses new chunks (STORAGE_NO_SPACE ->
ENOSPC), the refusal changes nothing on any replica and fails no chain, existing chunks stay
writable and readable, and freeing space lets new chunks in again.

Three levels: the reserve rule and its cached sampling (``storage.components.free_space``) and
the config keys; the CRAQ write path on an in-process cluster whose stores report the free
space a test sets; real processes with tmpfs data directories (root only)."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
import pytest
import trio
import trio.testing
from storage_cluster import SECRET, Cluster, key, mgmtd_config, payload

from client.connect import open_filesystem
from client.fs.errors import os_error
from client.mgmtd import MgmtdClient
from client.storage import ChunkWrite, StorageClient
from mgmtd.app import MgmtdApp
from storage.components.free_space import FreeSpaceGuard, SpaceReserve, format_bytes
from storage.config import StorageConfig, load_storage_config
from storage.store.interface import SpaceInfo
from storage.store.mem import MemChunkStore
from threefs.errors import Code, ThreeFSError
from threefs.kv import MemEngine
from threefs.rpc import RpcClient
from threefs.testing.cluster import LocalCluster
from threefs.wire import storage as wire
from threefs.wire.mgmtd import LocalTargetState, PublicTargetState
from threefs.wire.storage import UpdateType

GIB = 1 << 30
CAPACITY = 100 * GIB  # with the default reserve (1 GiB or 2 %) a target needs 2 GiB free
PLENTY = 50 * GIB
SHORT = GIB


def space(free: int, capacity: int = CAPACITY) -> SpaceInfo:
    return SpaceInfo(capacity_bytes=capacity, free_bytes=free, used_bytes=0, chunk_count=0)


# ---------------------------------------------------------------------- the rule


def test_the_reserve_is_the_larger_of_bytes_and_ratio():
    reserve = SpaceReserve(GIB, 0.02)
    assert reserve.enabled
    assert reserve.required(100 * GIB) == 2 * GIB
    assert reserve.required(10 * GIB) == GIB
    assert SpaceReserve(0, 0.5).required(1001) == 501  # rounded up
    assert reserve.allows(space(2 * GIB)) and not reserve.allows(space(2 * GIB - 1))
    off = SpaceReserve(0, 0.0)
    assert not off.enabled and off.allows(space(0))


def test_a_refusal_names_the_target_its_free_space_and_the_reserve():
    SpaceReserve(GIB, 0.02).check(7, space(2 * GIB))
    with pytest.raises(ThreeFSError) as refused:
        SpaceReserve(GIB, 0.02).check(7, space(GIB + GIB // 2))
    assert refused.value.code == Code.STORAGE_NO_SPACE
    assert refused.value.errno == errno.ENOSPC and not refused.value.retryable
    message = refused.value.message
    assert "target 7" in message and "1.5 GiB free of 100.0 GiB" in message
    assert "reserve of 2.0 GiB" in message and "min_free_ratio 0.02" in message


def test_format_bytes():
    assert [format_bytes(n) for n in (0, 1023, 1536, 5 << 20, 3 * GIB, 2048 * GIB)] == [
        "0 B",
        "1023 B",
        "1.5 KiB",
        "5.0 MiB",
        "3.0 GiB",
        "2.0 TiB",
    ]


class Sampler:
    """A target's space as a test sets it, counting samples; ``gate`` holds a sample back."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.calls = 0
        self.error: ThreeFSError | None = None
        self.gate: trio.Event | None = None

    async def __call__(self) -> SpaceInfo:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return space(self.free)


async def test_the_guard_samples_a_target_at_most_once_per_period():
    now = 0.0
    guard = FreeSpaceGuard(SpaceReserve(GIB, 0.0), refresh_s=1.0, clock=lambda: now)
    one, two = Sampler(PLENTY), Sampler(SHORT // 2)
    await guard.check_new_chunk(1, one)
    one.free = SHORT // 2
    now = 0.9
    await guard.check_new_chunk(1, one)  # the cached sample still has room
    assert one.calls == 1
    with pytest.raises(ThreeFSError) as refused:
        await guard.check_new_chunk(2, two)  # each target has its own sample
    assert "target 2" in refused.value.message
    now = 1.0
    with pytest.raises(ThreeFSError):
        await guard.check_new_chunk(1, one)
    assert one.calls == 2

    one.error = ThreeFSError(Code.STORAGE_IO_ERROR, "statvfs failed")
    now = 2.5
    with pytest.raises(ThreeFSError) as failed:
        await guard.check_new_chunk(1, one)
    assert failed.value.code == Code.STORAGE_IO_ERROR
    one.error, one.free = None, PLENTY
    await guard.check_new_chunk(1, one)  # a failed sample is not kept: sampled again at once
    assert one.calls == 4

    guard.forget(1)
    await guard.check_new_chunk(1, one)
    assert one.calls == 5


async def test_checks_during_a_sample_use_the_previous_one():
    now = 0.0
    guard = FreeSpaceGuard(SpaceReserve(GIB, 0.0), refresh_s=1.0, clock=lambda: now)
    sampler = Sampler(PLENTY)
    await guard.check_new_chunk(1, sampler)
    now, sampler.free, sampler.gate = 5.0, SHORT // 2, trio.Event()
    outcome: list[Code] = []

    async def first() -> None:
        try:
            await guard.check_new_chunk(1, sampler)
        except ThreeFSError as exc:
            outcome.append(exc.code)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first)
        await trio.testing.wait_all_tasks_blocked()
        await guard.check_new_chunk(1, sampler)  # the previous sample (room) answers
        assert sampler.calls == 2
        sampler.gate.set()
    assert outcome == [Code.STORAGE_NO_SPACE]
    with pytest.raises(ThreeFSError):
        await guard.check_new_chunk(1, sampler)  # the new sample is kept
    assert sampler.calls == 2


async def test_a_disabled_reserve_never_samples():
    guard = FreeSpaceGuard(SpaceReserve(0, 0.0), refresh_s=0.0, clock=lambda: 0.0)
    sampler = Sampler(0)
    await guard.check_new_chunk(1, sampler)
    assert sampler.calls == 0


async def test_crossing_the_reserve_is_logged_once_each_way(caplog):
    now = 0.0
    guard = FreeSpaceGuard(SpaceReserve(GIB, 0.0), refresh_s=0.0, clock=lambda: now)
    sampler = Sampler(SHORT // 2)
    with caplog.at_level(logging.INFO, logger="storage.free_space"):
        for _ in range(3):
            with pytest.raises(ThreeFSError):
                await guard.check_new_chunk(9, sampler)
        sampler.free = PLENTY
        for _ in range(3):
            await guard.check_new_chunk(9, sampler)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "target 9 refuses new chunks: 512.0 MiB free, reserve 1.0 GiB",
        "target 9 takes new chunks again: 50.0 GiB free, reserve 1.0 GiB",
    ]


# ---------------------------------------------------------------------- the config


def test_the_reserve_settings_default_and_load(tmp_path):
    config = StorageConfig(node_id=1, mgmtd_addresses=["127.0.0.1:1"])
    assert (config.min_free_bytes, config.min_free_ratio, config.free_space_refresh_s) == (GIB, 0.02, 1.0)
    path = tmp_path / "storage.toml"
    path.write_text(
        'node_id = 1\nmgmtd_addresses = ["h:1"]\nmin_free_bytes = 0\nmin_free_ratio = 0\n'
        "free_space_refresh_s = 0\n"
    )
    config = load_storage_config(path)
    assert (config.min_free_bytes, config.min_free_ratio, config.free_space_refresh_s) == (0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("min_free_bytes = -1", "min_free_bytes"),
        ("min_free_ratio = 1.0", "min_free_ratio"),
        ("min_free_ratio = -0.1", "min_free_ratio"),
        ("min_free_ratio = nan", "min_free_ratio"),
        ("free_space_refresh_s = -1.0", "free_space_refresh_s"),
    ],
)
def test_bad_reserve_settings_name_the_key(tmp_path, line, key):
    path = tmp_path / "storage.toml"
    path.write_text(f'node_id = 1\nmgmtd_addresses = ["h:1"]\n{line}\n')
    with pytest.raises(ThreeFSError) as error:
        load_storage_config(path)
    assert error.value.code == Code.CONFIG_INVALID
    assert f"'{key}'" in error.value.message


# ---------------------------------------------------------------------- the write path, in process


@asynccontextmanager
async def reserve_cluster(target_ids: list[int], **mgmtd_overrides: object) -> AsyncIterator[Cluster]:
    """mgmtd, a node per target (node ``n`` holds ``100 + n``) sampling free space on every
    new chunk, chain 1 over ``target_ids``."""
    async with trio.open_nursery() as nursery:
        mgmtd = await nursery.start(MgmtdApp(mgmtd_config(**mgmtd_overrides), SECRET, MemEngine()).run)
        async with RpcClient(SECRET) as rpc:
            cluster = Cluster(nursery, rpc, f"127.0.0.1:{mgmtd.port}")
            for target_id in target_ids:
                await cluster.start_node(target_id - 100, free_space_refresh_s=0.0)
            await cluster.create_chain(1, target_ids)
            yield cluster
        nursery.cancel_scope.cancel()


def set_free(cluster: Cluster, target_id: int, free: int) -> None:
    """Make target ``target_id``'s store report ``free`` bytes free of ``CAPACITY``."""
    store = cluster.store(target_id)

    def reported() -> SpaceInfo:
        held = MemChunkStore.space(store)
        return msgspec.structs.replace(held, capacity_bytes=CAPACITY, free_bytes=free)

    store.space = reported  # type: ignore[method-assign]


async def chunks(cluster: Cluster, target_id: int) -> list[tuple[int, int, int, int, bool]]:
    return [
        (m.chunk.index, m.commit_version, m.length, m.crc32c, m.dirty) for m in await cluster.dump(target_id)
    ]


async def assert_chain_untouched(cluster: Cluster, target_ids: list[int], chain_version: int) -> None:
    """The chain kept its version and every replica is SERVING and reports UPTODATE."""
    chain = await cluster.chain(1)
    assert chain.chain_version == chain_version
    assert [(t.target_id, t.public_state) for t in chain.targets] == [
        (t, PublicTargetState.SERVING) for t in target_ids
    ]
    targets = await cluster.targets()
    assert all(targets[t].local_state == LocalTargetState.UPTODATE for t in target_ids)


async def test_a_full_head_refuses_new_chunks_and_changes_nothing():
    chain = [101, 102, 103]
    async with reserve_cluster(chain) as cluster:
        for target_id in chain:
            set_free(cluster, target_id, PLENTY)
        old = payload(1)
        await cluster.write(key(0), old)
        version = (await cluster.chain(1)).chain_version
        before = {t: await chunks(cluster, t) for t in chain}

        set_free(cluster, 101, SHORT)
        with pytest.raises(ThreeFSError) as refused:
            await cluster.write(key(1), payload(2))
        assert refused.value.code == Code.STORAGE_NO_SPACE
        assert "target 101 refuses new chunks: 1.0 GiB free of 100.0 GiB" in refused.value.message
        assert {t: await chunks(cluster, t) for t in chain} == before

        # The storage client gives up at once, and the file system API says ENOSPC.
        client = StorageClient(cluster.rpc, cluster.routing)
        with pytest.raises(ThreeFSError) as given_up:
            await client.write_chunks([ChunkWrite(1, key(1), len(old), 0, payload(2))])
        assert given_up.value.code == Code.STORAGE_NO_SPACE
        assert (client.stats.rpcs, client.stats.retries) == (1, 0)
        error = os_error(given_up.value, "/f")
        assert error.errno == errno.ENOSPC and "target 101" in str(error)

        # Existing chunks take writes; a truncate (no data) may still create a chunk.
        reply = await cluster.write(key(0), b"patch", offset=10)
        assert reply.commit_version == 2
        await cluster.update(cluster.update_request(key(5), update_type=UpdateType.TRUNCATE, truncate_to=100))
        await assert_chain_untouched(cluster, chain, version)

        set_free(cluster, 101, PLENTY)
        reply = await cluster.write(key(1), payload(3))
        assert reply.commit_version == 1
        for target_id in chain:
            result, data = await cluster.read(target_id, key(1))
            assert (result.code, data) == (0, payload(3))
            result, data = await cluster.read(target_id, key(0))
            assert data == old[:10] + b"patch" + old[15:]


@pytest.mark.parametrize("full", [102, 103])
async def test_a_full_successor_refuses_and_the_head_drops_its_pending_version(full):
    chain = [101, 102, 103]
    async with reserve_cluster(chain) as cluster:
        for target_id in chain:
            set_free(cluster, target_id, PLENTY)
        await cluster.write(key(0), payload(1))
        version = (await cluster.chain(1)).chain_version
        before = {t: await chunks(cluster, t) for t in chain}

        set_free(cluster, full, SHORT)
        with pytest.raises(ThreeFSError) as refused:
            await cluster.write(key(1), payload(2))
        assert refused.value.code == Code.STORAGE_NO_SPACE
        assert f"target {full} refuses new chunks" in refused.value.message
        # Every replica before it had prepared the chunk; each dropped it again.
        assert {t: await chunks(cluster, t) for t in chain} == before
        await assert_chain_untouched(cluster, chain, version)

        set_free(cluster, full, PLENTY)
        reply = await cluster.write(key(1), payload(3))
        assert reply.commit_version == 1  # the refused version was not used up
        for target_id in chain:
            assert (await chunks(cluster, target_id))[1] == (1, 1, len(payload(3)), reply.crc32c, False)


async def test_a_syncing_target_takes_new_chunks_below_the_reserve():
    chain = [101, 102]
    async with reserve_cluster(chain, heartbeat_timeout_s=1.0) as cluster:
        await cluster.write(key(0), payload(1))
        cluster.stop_node(2)
        await cluster.write_retrying(key(1), payload(2))  # goes on at 101 once mgmtd fails 102
        await cluster.wait_chain([(101, "SERVING"), (102, "OFFLINE")])

        set_free(cluster, 102, SHORT)
        await cluster.start_node(2, free_space_refresh_s=0.0)
        # The sync sends chunk 1, new to 102, as a whole chunk: the reserve does not stop it.
        await cluster.wait_chain([(101, "SERVING"), (102, "SERVING")], timeout_s=20)
        assert await chunks(cluster, 102) == await chunks(cluster, 101)
        assert [c[0] for c in await chunks(cluster, 102)] == [0, 1]

        # SERVING again, it refuses new chunks.
        with pytest.raises(ThreeFSError) as refused:
            await cluster.write(key(2), payload(3))
        assert "target 102 refuses new chunks" in refused.value.message
        assert [c[0] for c in await chunks(cluster, 101)] == [0, 1]


# ---------------------------------------------------------------------- real processes, tmpfs

CHUNK = 64 << 10
RESERVE = 16 << 20  # min_free_bytes of the e2e cluster (the tmpfs holds 64 MiB)


def mount_tmpfs(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs at {path}: {result.stderr.strip()}")


def unmount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def fill(path: Path, leave: int) -> Path:
    """A filler file in ``path`` that leaves about ``leave`` bytes free."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, max(free_bytes(path) - leave, 1))
    finally:
        os.close(fd)
    return filler


async def replicas(rpc: RpcClient, cluster: LocalCluster) -> dict[int, list[tuple]]:
    """Every target's chunks: ``(inode, index, commit version, length, crc32c, dirty)``."""
    held = {}
    for node_id, address in cluster.storage_addresses.items():
        for target_id in cluster.target_ids(node_id):
            reply, _ = await rpc.call(
                address, wire.DUMP_CHUNK_META, wire.DumpChunkMetaRequest(target_id=target_id), timeout_s=10
            )
            held[target_id] = [
                (m.chunk.inode, m.chunk.index, m.commit_version, m.length, m.crc32c, m.dirty)
                for m in reply.chunks
            ]
    return held


@pytest.mark.slow
async def test_a_full_tmpfs_gives_enospc_keeps_the_data_and_recovers(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    nodes = {11: tmp_path / "cluster" / "storage-11", 12: tmp_path / "cluster" / "storage-12"}
    mounted: list[Path] = []
    try:
        for path in nodes.values():
            mount_tmpfs(path)
            mounted.append(path)
        local = LocalCluster(
            tmp_path / "cluster",
            storage_nodes=2,
            targets_per_node=1,
            replication=2,
            chunk_size=CHUNK,
            storage_config_extra=(
                f"min_free_bytes = {RESERVE}\nmin_free_ratio = 0\nfree_space_refresh_s = 0.1\n"
            ),
            meta_config_extra=f"default_chunk_size = {CHUNK}\n",
        )
        async with local as cluster, RpcClient(cluster.secret) as rpc:
            mgmtd = MgmtdClient([cluster.mgmtd_address], rpc=rpc)
            (chain,) = await mgmtd.list_chains()
            head_node = chain.targets[0].target_id // 100
            tail_node = chain.targets[1].target_id // 100
            async with open_filesystem(mgmtd=cluster.mgmtd_address, secret=cluster.secret, admin=True) as fs:
                written: dict[str, bytes] = {}
                for i, size in enumerate((0, 100, CHUNK, 3 * CHUNK + 17)):
                    written[f"/before-{i}"] = os.urandom(size)
                    await fs.write_bytes(f"/before-{i}", written[f"/before-{i}"])

                # The tail's disk fills first: writes go on until the tail refuses.
                fillers = [fill(nodes[tail_node], RESERVE + (2 << 20))]
                refusal = None
                for i in range(200):
                    data = os.urandom(2 * CHUNK)
                    try:
                        await fs.write_bytes(f"/fill-{i}", data)
                    except OSError as exc:
                        refusal = exc
                        break
                    written[f"/fill-{i}"] = data
                assert refusal is not None and refusal.errno == errno.ENOSPC, refusal
                assert f"target {tail_node * 100 + 1} refuses new chunks" in str(refusal)
                assert free_bytes(nodes[tail_node]) > RESERVE // 2  # refused well before the OS would

                # Chunks that exist still take writes.
                patched = bytearray(written["/before-3"])
                patched[5 : 5 + 4096] = os.urandom(4096)
                async with await fs.open("/before-3", "r+b") as file:
                    await file.pwrite(bytes(patched[5 : 5 + 4096]), 5)
                written["/before-3"] = bytes(patched)

                # Then the head's disk: now the head refuses.
                fillers.append(fill(nodes[head_node], RESERVE // 2))
                await trio.sleep(0.3)  # the head's free space sample is up to 0.1 s old
                with pytest.raises(OSError) as head_refusal:
                    await fs.write_bytes("/at-the-head", os.urandom(CHUNK))
                assert head_refusal.value.errno == errno.ENOSPC
                assert f"target {head_node * 100 + 1} refuses new chunks" in str(head_refusal.value)

                # Nothing is damaged: replicas agree, nothing is left pending, chains serve.
                held = await replicas(rpc, cluster)
                assert held[1101] == held[1201]
                assert not any(dirty for chunks_ in held.values() for *_, dirty in chunks_)
                (after,) = await mgmtd.list_chains()
                assert after.chain_version == chain.chain_version
                assert [t.public_state for t in after.targets] == [PublicTargetState.SERVING] * 2
                for path, data in written.items():
                    assert await fs.read_bytes(path) == data, path

                # Free the space: new files go in again.
                for filler in fillers:
                    filler.unlink()
                with trio.fail_after(10):
                    while True:
                        try:
                            await fs.write_bytes("/after", b"x" * (2 * CHUNK))
                            break
                        except OSError as exc:
                            assert exc.errno == errno.ENOSPC
                            await trio.sleep(0.1)
                written["/after"] = b"x" * (2 * CHUNK)
                written["/at-the-head"] = os.urandom(CHUNK)
                await fs.write_bytes("/at-the-head", written["/at-the-head"])
                for path, data in written.items():
                    assert await fs.read_bytes(path) == data, path
    finally:
        for path in reversed(mounted):
            unmount(path)
