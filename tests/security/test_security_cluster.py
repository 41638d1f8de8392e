"""Users and tokens against a real local cluster: the ``threefs admin user-*`` commands, admin
methods refused to a non-admin token (mgmtd, meta, storage) with nothing changed, meta holding a
token to its identity (and to POSIX permissions for it), impersonation, and tokens that stop
working when their user is removed or given a new token."""

from __future__ import annotations

import errno
import json
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio
from security_cluster import admin, as_cluster, as_user

from client.cli import main
from client.connect import connect
from client.meta import MetaClient
from client.mgmtd import MgmtdClient
from client.users import read_token_file, who_am_i
from threefs.errors import Code, ThreeFSError
from threefs.rpc import RpcClient, UserToken
from threefs.testing.cluster import LocalCluster
from threefs.wire import mgmtd as mwire
from threefs.wire import storage as swire
from threefs.wire.meta import Caller

pytestmark = pytest.mark.slow

T = TypeVar("T")
ROOT = Caller(uid=0, gid=0, admin=True)
BOB = Caller(uid=1000, gid=1000, groups=[100])
REFRESH_WAIT_S = 10.0  # meta refreshes its users every routing_refresh_s (1 s in LocalCluster)


@dataclass(frozen=True)
class Tokens:
    ops: Path  # admin user (uid 0)
    bob: Path  # plain user: uid 1000, gid 1000, groups 100
    fuse: Path  # impersonate user (a FUSE daemon's token), not admin


def add_user(cluster: LocalCluster, name: str, path: Path, *flags: str) -> Path:
    status = main(["admin", "user-add", name, *flags, "--save-token", str(path), *as_cluster(cluster)])
    assert status == 0
    return path


@pytest.fixture(scope="module")
def tokens(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Tokens:
    """Three users, and a namespace made with the cluster secret: ``/sec-locked`` (root's,
    0755), ``/sec-bob`` (bob's, 0755), ``/sec-shared`` (root's, 0777)."""
    directory = tmp_path_factory.mktemp("tokens")
    tokens = Tokens(
        ops=add_user(cluster, "ops", directory / "ops", "--uid", "0", "--gid", "0", "--admin"),
        bob=add_user(cluster, "bob", directory / "bob", "--uid", "1000", "--gid", "1000", "--groups", "100"),
        fuse=add_user(cluster, "fuse", directory / "fuse", "--uid", "0", "--gid", "0", "--impersonate"),
    )

    async def namespace(meta: MetaClient) -> None:
        await meta.mkdir("/sec-locked", 0o755)
        await meta.mkdir("/sec-bob", 0o755)
        await meta.set_attr("/sec-bob", uid=1000, gid=1000)
        await meta.mkdir("/sec-shared", 0o777)

    trio.run(with_meta, cluster, cluster.secret, namespace)
    return tokens


async def with_meta(
    cluster: LocalCluster,
    credential: Any,
    work: Callable[[MetaClient], Awaitable[T]],
    caller: Caller = ROOT,
) -> T:
    """``work(meta)`` with a MetaClient over ``credential`` whose default caller is ``caller``."""
    async with RpcClient(credential) as rpc:
        return await work(MetaClient(rpc, addresses=cluster.meta_addresses, caller=caller))


def refused(code: Code, work: Callable[[], Awaitable[object]]) -> ThreeFSError:
    async def run() -> ThreeFSError:
        with pytest.raises(ThreeFSError) as caught:
            await work()
        return caught.value

    error = trio.run(run)
    assert error.code == code, error
    return error


def exists(cluster: LocalCluster, path: str) -> bool:
    async def stat_it(meta: MetaClient) -> bool:
        try:
            await meta.stat(path)
        except ThreeFSError as exc:
            if exc.code == Code.META_NOT_FOUND:
                return False
            raise
        return True

    return trio.run(with_meta, cluster, cluster.secret, stat_it)


def settled_routing(cluster: LocalCluster) -> mwire.RoutingInfo:
    """The routing info once every target has reported UPTODATE at its chain's version: until
    then each heartbeat of a just-started cluster still moves the routing version."""
    deadline = time.monotonic() + 30
    while True:
        info = routing(cluster)
        if all(
            target.local_state == mwire.LocalTargetState.UPTODATE
            and target.chain_version_seen == info.chains[target.chain_id].chain_version
            for target in info.targets.values()
        ):
            return info
        assert time.monotonic() < deadline, f"routing never settled: {info}"
        time.sleep(0.1)


def routing(cluster: LocalCluster) -> mwire.RoutingInfo:
    async def get() -> mwire.RoutingInfo:
        async with MgmtdClient([cluster.mgmtd_address], cluster.secret) as mgmtd:
            response = await mgmtd.call(mwire.GET_ROUTING_INFO, mwire.GetRoutingInfoRequest())
            return response.routing

    return trio.run(get)


def user_list(cluster: LocalCluster, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    status, out, err = admin(capsys, as_cluster(cluster), "user-list", "--json")
    assert (status, err) == (0, "")
    return json.loads(out)["users"]


async def mgmtd_who(cluster: LocalCluster, token: UserToken) -> mwire.UserInfo | None:
    async with MgmtdClient([cluster.mgmtd_address], token) as mgmtd:
        return await who_am_i(mgmtd)


async def wait_refused_at_meta(cluster: LocalCluster, credential: Any, caller: Caller) -> ThreeFSError:
    """Poll meta with ``credential`` (new connections) until it refuses with RPC_AUTH_FAILED."""
    with trio.fail_after(REFRESH_WAIT_S):
        while True:
            try:
                await with_meta(cluster, credential, lambda meta: meta.stat("/"), caller)
            except ThreeFSError as exc:
                assert exc.code == Code.RPC_AUTH_FAILED, exc
                return exc
            await trio.sleep(0.1)


# ----------------------------------------------------------------------------- the CLI


def test_user_commands_through_the_cli(cluster, tokens, capsys, tmp_path):
    secret = as_cluster(cluster)
    status, out, err = admin(
        capsys, secret, "user-add", "carol", "--uid", "2000", "--gid", "2000", "--groups", "20,10",
        "--save-token", str(tmp_path / "carol"),
    )  # fmt: skip
    assert (status, err) == (0, ""), err
    assert f"token written to {tmp_path / 'carol'} (mode 0600)" in out
    assert stat.S_IMODE((tmp_path / "carol").stat().st_mode) == 0o600
    carol = read_token_file(tmp_path / "carol")

    # without --save-token the token is shown once
    status, out, err = admin(capsys, secret, "user-add", "dave", "--uid", "2001", "--gid", "2001", "--json")
    assert status == 0
    dave = json.loads(out)
    assert dave["token"].startswith("dave:") and dave["user"]["uid"] == 2001

    listed = {user["name"]: user for user in user_list(cluster, capsys)}
    assert {"ops", "bob", "fuse", "carol", "dave"} <= set(listed)
    assert listed["carol"]["groups"] == [10, 20] and not listed["carol"]["admin"]
    assert listed["ops"]["admin"] and listed["fuse"]["impersonate"]
    status, out, _ = admin(capsys, secret, "user-list")
    assert out.splitlines()[0].split()[:5] == ["NAME", "UID", "GID", "GROUPS", "FLAGS"]
    assert carol.key.hex() not in out and dave["token"].split(":")[1] not in json.dumps(listed)

    # a second user of the same name is refused and changes nothing
    before = user_list(cluster, capsys)
    status, _, err = admin(capsys, secret, "user-add", "carol", "--uid", "1", "--gid", "1", "--admin")
    assert status == 1 and "ALREADY_EXISTS" in err and "'carol' already exists" in err
    assert user_list(cluster, capsys) == before

    # mgmtd knows the token's user
    who = trio.run(mgmtd_who, cluster, carol)
    assert who is not None and (who.name, who.uid, who.gid, who.groups) == ("carol", 2000, 2000, [10, 20])

    # a new token: the old one stops working, the new one works
    status, out, _ = admin(capsys, secret, "user-set-token", "carol", "--save-token", str(tmp_path / "c2"))
    assert status == 0 and "new token for user carol" in out
    carol2 = read_token_file(tmp_path / "c2")
    assert carol2.key != carol.key
    error = refused(Code.RPC_AUTH_FAILED, lambda: mgmtd_who(cluster, carol))
    assert "user 'carol': unknown user or wrong token" in error.message
    assert trio.run(mgmtd_who, cluster, carol2) is not None

    # removal: the token stops working; removing again is NOT_FOUND
    status, out, _ = admin(capsys, secret, "user-remove", "carol")
    assert status == 0 and "removed user carol" in out
    refused(Code.RPC_AUTH_FAILED, lambda: mgmtd_who(cluster, carol2))
    status, _, err = admin(capsys, secret, "user-remove", "carol")
    assert status == 1 and "NOT_FOUND" in err
    assert "carol" not in {user["name"] for user in user_list(cluster, capsys)}


def test_a_non_admin_token_is_refused_admin_methods_and_changes_nothing(cluster, tokens, capsys):
    bob = as_user(cluster, tokens.bob)
    before = settled_routing(cluster)
    users_before = user_list(cluster, capsys)
    for argv in [
        ["create-targets", "--node-id", "11", "--target-id", "999"],
        ["set-node-enabled", "11", "--disable"],
        ["offline-target", "1101"],
        ["list-nodes"],
        ["user-list"],
        ["user-add", "eve", "--uid", "0", "--gid", "0", "--admin"],
        ["user-set-token", "ops"],
        ["user-remove", "ops"],
    ]:
        status, out, err = admin(capsys, bob, *argv)
        assert status == 1 and out == "", (argv, out)
        assert "PERMISSION_DENIED" in err and "user 'bob' is not one" in err, (argv, err)
    after = routing(cluster)
    assert after.version == before.version and after.nodes[11].status == mwire.NodeStatus.ACTIVE
    assert user_list(cluster, capsys) == users_before
    # an admin token may
    status, out, err = admin(capsys, as_user(cluster, tokens.ops), "list-nodes")
    assert status == 0 and "STORAGE" in out, err


def test_even_an_admin_token_is_refused_service_methods(cluster, tokens):
    ops = read_token_file(tokens.ops)

    async def call(spec: Any, request: Any) -> Any:
        async with RpcClient(ops) as rpc:
            return await rpc.call(cluster.mgmtd_address, spec, request, timeout_s=5)

    error = refused(Code.PERMISSION_DENIED, lambda: call(mwire.USER_KEYS, mwire.UserKeysRequest()))
    assert "cluster members" in error.message
    heartbeat = mwire.HeartbeatRequest(
        cluster_id="local", node_id=11, node_type=mwire.NodeType.STORAGE, seq=1, sent_ms=1, started_ms=1
    )
    refused(Code.PERMISSION_DENIED, lambda: call(mwire.HEARTBEAT, heartbeat))


def test_meta_admin_methods_need_an_admin_token(cluster, tokens, capsys):
    bob = as_user(cluster, tokens.bob)

    async def snapshot(meta: MetaClient) -> tuple[Any, ...]:
        names = sorted(entry.name for entry in await meta.list_all("/"))
        return names, (await meta.gc_list()).jobs

    before = trio.run(with_meta, cluster, cluster.secret, snapshot)
    for argv, what in [
        (["fsck", "--repair"], "Meta.Fsck needs one"),
        (["gc-list"], "Meta.GcList needs one"),
        (["mkdir", "/sec-by-bob"], "may not act with the admin flag"),
    ]:
        status, out, err = admin(capsys, bob, *argv)
        assert status == 1 and "META_NOT_PERMITTED" in err and what in err, (argv, err)
    assert trio.run(with_meta, cluster, cluster.secret, snapshot) == before
    status, out, err = admin(capsys, as_user(cluster, tokens.ops), "fsck")
    assert status == 0, err


# ----------------------------------------------------------------------------- meta and the token's identity


def test_meta_holds_a_token_to_its_identity(cluster, tokens):
    bob = read_token_file(tokens.bob)

    def as_bob(caller: Caller, path: str) -> Callable[[], Awaitable[object]]:
        return lambda: with_meta(cluster, bob, lambda meta: meta.mkdir(path, caller=caller))

    for caller, why in [
        (Caller(uid=0, gid=0), "acts as uid 1000 gid 1000, not as uid 0 gid 0"),
        (Caller(uid=1000, gid=0), "not as uid 1000 gid 0"),
        (Caller(uid=1000, gid=1000, admin=True), "may not act with the admin flag"),
        (Caller(uid=1000, gid=1000, groups=[100, 4242]), "is not in group(s) [4242]"),
    ]:
        error = refused(Code.META_NOT_PERMITTED, as_bob(caller, "/sec-shared/by-bob"))
        assert why in error.message
        assert not exists(cluster, "/sec-shared/by-bob")
    # as itself, POSIX permissions apply to the token's uid
    error = refused(Code.META_PERMISSION_DENIED, as_bob(BOB, "/sec-locked/by-bob"))
    assert "uid 1000 lacks wx permission" in error.message
    assert not exists(cluster, "/sec-locked/by-bob")
    made = trio.run(as_bob(BOB, "/sec-bob/mine"))
    assert (made.uid, made.gid) == (1000, 1000)  # type: ignore[attr-defined]
    trio.run(as_bob(Caller(uid=1000, gid=1000), "/sec-bob/fewer-groups"))  # a subset is fine


def test_the_library_acts_as_the_tokens_user(cluster, tokens):
    """``threefs.connect(token_file=...)`` (``client.connect.connect``, which it calls; imported
    directly so the test also runs under a bare ``pytest``): the default caller is the token's
    user; chunk I/O goes to storage with the token."""
    with connect(mgmtd=cluster.mgmtd_address, token_file=tokens.bob) as fs:
        fs.write_bytes("/sec-bob/data", b"x" * 200_000)
        assert fs.read_bytes("/sec-bob/data") == b"x" * 200_000
        assert fs.stat("/sec-bob/data").st_uid == 1000
        with pytest.raises(PermissionError) as caught:
            fs.write_bytes("/sec-locked/data", b"no")
        assert caught.value.errno == errno.EACCES
    assert not exists(cluster, "/sec-locked/data")
    with connect(mgmtd=cluster.mgmtd_address, token_file=tokens.bob, admin=True) as fs:
        with pytest.raises(PermissionError) as caught:
            fs.stat("/")
        assert caught.value.errno == errno.EPERM


def test_an_impersonate_token_acts_for_others_but_not_as_admin(cluster, tokens):
    fuse = read_token_file(tokens.fuse)

    def as_fuse(caller: Caller, path: str) -> Callable[[], Awaitable[object]]:
        return lambda: with_meta(cluster, fuse, lambda meta: meta.mkdir(path, caller=caller))

    made = trio.run(as_fuse(Caller(uid=2000, gid=2000, groups=[7]), "/sec-shared/for-2000"))
    assert made.uid == 2000  # type: ignore[attr-defined]
    refused(Code.META_PERMISSION_DENIED, as_fuse(Caller(uid=2000, gid=2000), "/sec-bob/for-2000"))
    error = refused(Code.META_NOT_PERMITTED, as_fuse(ROOT, "/sec-shared/as-root"))
    assert "user 'fuse' is not an admin user" in error.message
    assert not exists(cluster, "/sec-bob/for-2000") and not exists(cluster, "/sec-shared/as-root")
    refused(Code.META_NOT_PERMITTED, lambda: with_meta(cluster, fuse, lambda meta: meta.fsck()))


def test_storage_admin_and_replica_methods_are_refused_to_users(cluster, tokens):
    storage = cluster.storage_addresses[11]
    target = cluster.target_ids(11)[0]
    bob, ops = read_token_file(tokens.bob), read_token_file(tokens.ops)

    async def call(token: UserToken, spec: Any, request: Any) -> Any:
        async with RpcClient(token) as rpc:
            return (await rpc.call(storage, spec, request, timeout_s=5))[0]

    dump = swire.DumpChunkMetaRequest(target_id=target, limit=1)
    refused(Code.PERMISSION_DENIED, lambda: call(bob, swire.DUMP_CHUNK_META, dump))
    assert trio.run(call, ops, swire.DUMP_CHUNK_META, dump) is not None
    sync = swire.SyncDoneRequest(chain_id=1, chain_version=1, target_id=target)
    error = refused(Code.PERMISSION_DENIED, lambda: call(ops, swire.SYNC_DONE, sync))
    assert "storage nodes" in error.message
    chain = routing(cluster).chains[1]
    forwarded = swire.RemoveChunksRequest(
        tag=swire.RequestTag(client_id=b"c" * 16, channel=1, seq=1),
        chain_id=1,
        chain_version=chain.chain_version,
        inode=12345,
        from_target=target,
    )
    error = refused(Code.PERMISSION_DENIED, lambda: call(ops, swire.REMOVE_CHUNKS, forwarded))
    assert "forwarded replica hop" in error.message
    assert trio.run(call, bob, swire.SPACE_INFO, swire.SpaceInfoRequest()).targets


# ----------------------------------------------------------------------------- tokens that stop working


def test_a_removed_users_token_stops_working(cluster, tokens, capsys, tmp_path):
    path = add_user(cluster, "temp", tmp_path / "temp", "--uid", "3000", "--gid", "3000")
    token = read_token_file(path)
    me = Caller(uid=3000, gid=3000)

    async def scenario() -> None:
        async with RpcClient(token) as rpc:
            meta = MetaClient(rpc, addresses=cluster.meta_addresses, caller=me)
            await meta.mkdir("/sec-shared/temp-1")
            remove = ["admin", "user-remove", "temp", *as_cluster(cluster)]
            assert await trio.to_thread.run_sync(main, remove) == 0
            # the open connection is refused once meta has refreshed its users
            with trio.fail_after(REFRESH_WAIT_S):
                while True:
                    try:
                        await meta.mkdir(f"/sec-shared/temp-{trio.current_time()}")
                    except ThreeFSError as exc:
                        assert exc.code == Code.RPC_AUTH_FAILED, exc
                        break
                    await trio.sleep(0.1)
            with pytest.raises(ThreeFSError) as caught:
                await meta.mkdir("/sec-shared/temp-refused")
            assert "was removed or given a new token" in caught.value.message
        await wait_refused_at_meta(cluster, token, me)

    trio.run(scenario)
    assert not exists(cluster, "/sec-shared/temp-refused")
    capsys.readouterr()


def test_a_new_token_replaces_the_old_one_at_meta(cluster, tokens, capsys, tmp_path):
    old = read_token_file(add_user(cluster, "rotor", tmp_path / "old", "--uid", "3001", "--gid", "3001"))
    me = Caller(uid=3001, gid=3001)
    trio.run(with_meta, cluster, old, lambda meta: meta.stat("/"), me)  # meta knows it
    status, _, err = admin(
        capsys, as_cluster(cluster), "user-set-token", "rotor", "--save-token", str(tmp_path / "new")
    )
    assert status == 0, err
    new = read_token_file(tmp_path / "new")
    # the new token works at once (meta looks again on an unknown key), the old one stops
    trio.run(with_meta, cluster, new, lambda meta: meta.stat("/"), me)
    error = trio.run(wait_refused_at_meta, cluster, old, me)
    assert "user 'rotor': unknown user or wrong token" in error.message
