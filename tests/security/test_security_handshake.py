"""User-token authentication on the RPC layer, against an in-process server: the handshake
(good token, unknown user, wrong key, a token made a moment ago), the identity handlers see,
per-request authorization, tokens that stop working on a live connection, and token files
(refused when others may read them, before any connection is tried)."""

from __future__ import annotations

import os
import stat
from functools import partial
from typing import Any

import pytest
import trio

from client.cli import main
from client.connect import resolve_cluster
from client.users import read_token_file, write_token_file
from threefs.errors import Code, ThreeFSError
from threefs.rpc import (
    CachedUserDirectory,
    CallContext,
    Identity,
    RpcClient,
    RpcServer,
    UserKey,
    UserToken,
    format_token,
    parse_token,
    rpc_method,
)
from threefs.rpc.debug import DebugService
from threefs.rpc.transport import Buffer
from threefs.wire.common import MethodSpec
from threefs.wire.debug import ECHO, FAIL, EchoRequest, EchoResponse, FailRequest

SECRET = "handshake-test-secret"
ALICE = Identity(name="alice", uid=1000, gid=100, groups=frozenset({10}))
ALICE_KEY = bytes(range(32))


class UserEcho(DebugService):
    """Echo open to users (it records each caller's identity); Fail is not."""

    def __init__(self) -> None:
        super().__init__()
        self.identities: list[Identity | None] = []
        self.fails_run = 0

    def authorize_user(self, identity: Identity, spec: MethodSpec, request: Any) -> None:
        if spec != ECHO:
            raise ThreeFSError(Code.PERMISSION_DENIED, f"{spec.name} is not for users")

    @rpc_method(ECHO)
    async def echo(self, ctx: CallContext, request: EchoRequest, payload: Buffer) -> EchoResponse:
        self.identities.append(ctx.identity)
        return EchoResponse(text=request.text, number=0, payload_bytes=0)

    @rpc_method(FAIL)
    async def fail(self, ctx: CallContext, request: FailRequest, payload: Buffer) -> Any:
        self.fails_run += 1
        raise ThreeFSError(Code.INTERNAL, "should not run for users")


class Users:
    """A mutable user table behind a ``CachedUserDirectory`` that counts its fetches."""

    def __init__(self) -> None:
        self.table: dict[str, UserKey] = {"alice": UserKey(ALICE_KEY, ALICE)}
        self.fetches = 0
        self.directory = CachedUserDirectory(self.fetch, min_interval_s=0.0)

    async def fetch(self) -> dict[str, UserKey]:
        self.fetches += 1
        return dict(self.table)


async def serve(nursery: trio.Nursery, service: Any, users: Users | None) -> str:
    server = RpcServer(SECRET, [service], users=users.directory if users else None)
    port = await nursery.start(server.serve, "127.0.0.1", 0)
    return f"127.0.0.1:{port}"


async def echo(credential: Any, address: str, text: str = "hi") -> EchoResponse:
    async with RpcClient(credential) as client:
        response, _ = await client.call(address, ECHO, EchoRequest(text=text), timeout_s=5)
        return response


async def test_a_good_token_authenticates_and_handlers_see_the_identity(nursery):
    service, users = UserEcho(), Users()
    address = await serve(nursery, service, users)
    assert (await echo(UserToken("alice", ALICE_KEY), address)).text == "hi"
    assert (await echo(SECRET, address)).text == "hi"  # the cluster secret still works
    assert service.identities == [ALICE, None]


async def test_unknown_user_and_wrong_key_are_refused_alike(nursery, caplog):
    service, users = UserEcho(), Users()
    address = await serve(nursery, service, users)
    for token in (UserToken("mallory", ALICE_KEY), UserToken("alice", bytes(32))):
        with pytest.raises(ThreeFSError) as caught:
            await echo(token, address)
        assert caught.value.code == Code.RPC_AUTH_FAILED
        assert f"user {token.name!r}: unknown user or wrong token" in caught.value.message
    assert service.identities == []
    # each refusal looked again (the user or key could be new) before refusing
    assert users.fetches == 2
    assert "unknown user" in caplog.text and "wrong key" in caplog.text  # the log tells them apart


async def test_a_token_made_a_moment_ago_works_at_once(nursery):
    service, users = UserEcho(), Users()
    address = await serve(nursery, service, users)
    await users.directory.refresh()
    bob = Identity(name="bob", uid=1001, gid=100)
    users.table["bob"] = UserKey(b"b" * 32, bob)  # not yet in the directory's memory
    assert (await echo(UserToken("bob", b"b" * 32), address)).text == "hi"
    assert service.identities == [bob]


async def test_a_server_without_users_refuses_tokens(nursery):
    address = await serve(nursery, UserEcho(), None)
    with pytest.raises(ThreeFSError) as caught:
        await echo(UserToken("alice", ALICE_KEY), address)
    assert caught.value.code == Code.RPC_AUTH_FAILED
    assert "does not accept user tokens" in caught.value.message


async def test_requests_a_service_does_not_authorize_never_run(nursery):
    service, users = UserEcho(), Users()
    address = await serve(nursery, service, users)
    async with RpcClient(UserToken("alice", ALICE_KEY)) as client:
        with pytest.raises(ThreeFSError) as caught:
            await client.call(address, FAIL, FailRequest(code=1), timeout_s=5)
        assert caught.value.code == Code.PERMISSION_DENIED
        assert service.fails_run == 0
        # the connection stays usable for what is allowed
        await client.call(address, ECHO, EchoRequest(), timeout_s=5)


async def test_services_refuse_users_unless_they_say_otherwise(nursery):
    users = Users()
    address = await serve(nursery, DebugService(), users)  # no authorize_user of its own
    with pytest.raises(ThreeFSError) as caught:
        await echo(UserToken("alice", ALICE_KEY), address)
    assert caught.value.code == Code.PERMISSION_DENIED
    assert "not open to user tokens" in caught.value.message


@pytest.mark.parametrize("change", ["removed", "new key"])
async def test_a_live_connection_stops_working_when_its_token_does(nursery, change):
    service, users = UserEcho(), Users()
    address = await serve(nursery, service, users)
    async with RpcClient(UserToken("alice", ALICE_KEY)) as client:
        await client.call(address, ECHO, EchoRequest(), timeout_s=5)
        if change == "removed":
            del users.table["alice"]
        else:
            users.table["alice"] = UserKey(b"n" * 32, ALICE)
        await users.directory.refresh()
        with pytest.raises(ThreeFSError) as caught:
            await client.call(address, ECHO, EchoRequest(), timeout_s=5)
        assert caught.value.code == Code.RPC_AUTH_FAILED
        assert "removed or given a new token" in caught.value.message
    assert len(service.identities) == 1
    if change == "new key":
        assert (await echo(UserToken("alice", b"n" * 32), address)).text == "hi"


async def test_directory_fetches_are_shared_and_spaced():
    calls = 0
    first_began = trio.Event()

    async def fetch() -> dict[str, UserKey]:
        nonlocal calls
        calls += 1
        first_began.set()
        await trio.sleep(0.05)
        return {}

    directory = CachedUserDirectory(fetch, min_interval_s=0.2)
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(directory.refresh)
        await first_began.wait()
        for _ in range(9):  # asked while the first fetch runs: it began too early for them
            nursery.start_soon(directory.refresh)
    # the nine shared one more fetch, begun at least min_interval_s after the first
    assert calls == 2
    assert trio.current_time() - started >= 0.2


async def test_a_failing_fetch_keeps_the_users_known():
    answers: list[Any] = [{"alice": UserKey(ALICE_KEY, ALICE)}, ThreeFSError(Code.RPC_CONNECT_FAILED, "down")]

    async def fetch() -> dict[str, UserKey]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    directory = CachedUserDirectory(fetch, min_interval_s=0.0)
    await directory.refresh()
    await directory.refresh()
    assert directory.get("alice") == UserKey(ALICE_KEY, ALICE) and not answers


# ----------------------------------------------------------------------------- tokens and token files


def test_token_text_round_trip_and_errors():
    token = UserToken("alice", ALICE_KEY)
    assert parse_token(format_token(token) + "\n") == token
    assert format_token(token) == "alice:" + ALICE_KEY.hex()
    assert ALICE_KEY.hex() not in repr(token)
    for text, message in [
        ("alice", "NAME:KEY"),
        ("alice:zz", "not hex"),
        ("alice:abcd", "2 bytes, not 32"),
        (":" + ALICE_KEY.hex(), "NAME:KEY"),
        ("-x:" + ALICE_KEY.hex(), "bad user name"),
        ("a\nb:" + ALICE_KEY.hex(), "bad user name"),
    ]:
        with pytest.raises(ThreeFSError, match=message) as caught:
            parse_token(text)
        assert caught.value.code == Code.INVALID_ARG
        assert ALICE_KEY.hex() not in caught.value.message


def test_token_files_are_written_private_and_read_back(tmp_path):
    path = tmp_path / "alice.token"
    path.write_text("old")
    os.chmod(path, 0o644)
    write_token_file(path, UserToken("alice", ALICE_KEY))  # replaces the file, with mode 0600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_token_file(path) == UserToken("alice", ALICE_KEY)
    assert [p.name for p in tmp_path.iterdir()] == ["alice.token"]  # no temporary file left


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602])
def test_a_token_file_others_may_read_or_write_is_refused(tmp_path, mode):
    path = write_token_file(tmp_path / "t", UserToken("alice", ALICE_KEY))
    os.chmod(path, mode)
    with pytest.raises(ThreeFSError) as caught:
        read_token_file(path)
    assert caught.value.code == Code.CONFIG_INVALID
    assert str(path) in caught.value.message and f"mode {mode:04o}" in caught.value.message


def test_unreadable_or_malformed_token_files_are_refused(tmp_path):
    with pytest.raises(ThreeFSError, match="cannot read token file .*missing"):
        read_token_file(tmp_path / "missing")
    bad = tmp_path / "bad"
    bad.write_text("not a token")
    os.chmod(bad, 0o600)
    with pytest.raises(ThreeFSError, match=f"token file {bad}: a token has the form"):
        read_token_file(bad)


async def test_a_loose_token_file_is_refused_before_connecting(nursery, tmp_path):
    """The library and the CLI refuse the file before any connection: the server sees none."""
    accepted = 0

    async def count(stream: trio.SocketStream) -> None:
        nonlocal accepted
        accepted += 1
        await stream.aclose()

    listeners = await nursery.start(partial(trio.serve_tcp, count, 0, host="127.0.0.1"))
    address = f"127.0.0.1:{listeners[0].socket.getsockname()[1]}"
    path = write_token_file(tmp_path / "t", UserToken("alice", ALICE_KEY))
    os.chmod(path, 0o644)
    with pytest.raises(ThreeFSError, match="mode 0644") as caught:
        resolve_cluster(mgmtd=address, token_file=path)
    assert caught.value.code == Code.CONFIG_INVALID

    def cli() -> int:
        return main(["admin", "list-nodes", "--mgmtd", address, "--token-file", str(path), "--timeout", "2"])

    assert await trio.to_thread.run_sync(cli) == 2
    await trio.sleep(0.1)
    assert accepted == 0


def test_cluster_config_token_file_is_relative_to_the_config(tmp_path):
    path = write_token_file(tmp_path / "me.token", UserToken("alice", ALICE_KEY))
    config = tmp_path / "cluster.toml"
    config.write_text(
        'mgmtd_addresses = ["127.0.0.1:1"]\ncluster_secret_file = "secret"\ntoken_file = "me.token"\n'
    )
    cluster, credential = resolve_cluster(config)
    assert cluster.token_file == str(path) and credential == UserToken("alice", ALICE_KEY)  # token wins
    _, credential = resolve_cluster(config, secret="s")  # an explicit secret wins over both
    assert credential == b"s"
    with pytest.raises(ThreeFSError, match="give one of") as caught:
        resolve_cluster(config, secret="s", token_file=path)
    assert caught.value.code == Code.CONFIG_INVALID


def test_the_cli_takes_a_token_or_a_secret_not_both(tmp_path, capsys):
    path = write_token_file(tmp_path / "t", UserToken("alice", ALICE_KEY))
    argv = [
        "admin",
        "list-nodes",
        "--mgmtd",
        "127.0.0.1:1",
        "--token-file",
        str(path),
        "--secret-file",
        str(path),
    ]
    assert main(argv) == 2
    assert "give --token-file or --secret-file, not both" in capsys.readouterr().err
