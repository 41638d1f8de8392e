"""Two real meta processes on one KV engine (a sqlite file; a PostgreSQL server) while client
tasks race conflicting creates, renames, links and removals in one directory: afterwards the
consistency checker (the Fsck RPC, as ``threefs admin fsck`` runs it) finds nothing wrong, and
the directory lists exactly the names that stat finds."""

from __future__ import annotations

import random

import pytest
import trio

from client.meta import MetaClient
from threefs.errors import ThreeFSError
from threefs.rpc import RpcClient
from threefs.testing.cluster import LocalCluster
from threefs.wire.meta import Caller, InodeType, RenameFlags

pytestmark = pytest.mark.slow

ROOT = Caller(uid=0, gid=0, admin=True)
NAMES = [f"n{i}".encode() for i in range(6)]
CLIENTS = 6
OPS_PER_CLIENT = 60


async def one_op(meta: MetaClient, rng: random.Random) -> None:
    a, b = (b"/race/" + rng.choice(NAMES) for _ in range(2))
    choice = rng.randrange(8)
    if choice == 0:
        await meta.mknod(a, InodeType.FILE)
    elif choice == 1:
        await meta.mkdir(a)
    elif choice == 2:
        await meta.rename(a, b)
    elif choice == 3:
        await meta.rename(a, b, flags=RenameFlags.NOREPLACE)
    elif choice == 4:
        await meta.rename(a, b, flags=RenameFlags.EXCHANGE)
    elif choice == 5:
        await meta.hard_link(a, b)
    elif choice == 6:
        await meta.unlink(a)
    else:
        await meta.rmdir(a)


async def race(cluster: LocalCluster, seed: int) -> None:
    async with RpcClient(cluster.secret) as rpc:
        servers = cluster.meta_addresses
        assert len(servers) == 2
        setup = MetaClient(rpc, addresses=servers[:1], caller=ROOT)
        await setup.mkdir("/race")
        done = {"ok": 0, "refused": 0}

        async def client(index: int) -> None:
            # each client talks to one server: half the clients per server
            meta = MetaClient(rpc, addresses=[servers[index % 2]], caller=ROOT)
            rng = random.Random(seed * 100 + index)
            for _ in range(OPS_PER_CLIENT):
                try:
                    await one_op(meta, rng)
                    done["ok"] += 1
                except ThreeFSError as exc:
                    assert exc.code.name.startswith("META_"), exc  # refusals only, no failures
                    done["refused"] += 1

        async with trio.open_nursery() as nursery:
            for index in range(CLIENTS):
                nursery.start_soon(client, index)
        print("race:", done)
        assert done["ok"] > CLIENTS * OPS_PER_CLIENT // 10

        check = MetaClient(rpc, addresses=servers[1:], caller=ROOT)
        report = await check.fsck()
        assert report.problems == [], report.problems
        entries = await check.list_all("/race", with_attrs=True)
        for entry in entries:
            inode = await check.stat(b"/race/" + entry.name, follow=False)
            assert inode.id == entry.inode and entry.attrs is not None and entry.attrs.nlink == inode.nlink
        assert (await check.stat("/race")).nlink == 2 + sum(e.type == InodeType.DIRECTORY for e in entries)


async def test_two_meta_servers_on_one_sqlite_file_stay_consistent(tmp_path):
    async with LocalCluster(tmp_path, storage_nodes=1, replication=1, meta_servers=2) as cluster:
        await race(cluster, seed=1)


@pytest.mark.postgres
async def test_two_meta_servers_on_one_postgres_stay_consistent(tmp_path):
    from threefs.testing.postgres import PostgresServer, find_postgres_bin

    if find_postgres_bin() is None:
        pytest.skip("no PostgreSQL server binaries (the postgresql package)")
    with PostgresServer() as server:
        async with LocalCluster(
            tmp_path, storage_nodes=1, replication=1, meta_servers=2, meta_kv_url=server.dsn
        ) as cluster:
            await race(cluster, seed=2)
