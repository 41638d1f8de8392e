"""The client's connection pool: reuse, growth, failures and reconnection."""

from __future__ import annotations

import socket

import pytest
import trio

from threefs.errors import Code, ThreeFSError
from threefs.rpc import RpcClient, RpcClientConfig
from threefs.rpc.debug import DebugStub
from threefs.wire.debug import EchoRequest, SleepRequest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_sequential_calls_reuse_one_connection(server, secret):
    async with RpcClient(secret, RpcClientConfig(pool_size_per_address=4)) as client:
        stub = DebugStub(client, server.address)
        for index in range(20):
            assert (await stub.echo(EchoRequest(number=index)))[0].number == index
        assert client.connection_count(server.address) == 1


async def test_pool_grows_only_while_connections_are_busy(server, secret):
    async with RpcClient(secret, RpcClientConfig(pool_size_per_address=3)) as client:
        stub = DebugStub(client, server.address)
        async with trio.open_nursery() as nursery:
            for _ in range(12):
                nursery.start_soon(stub.sleep, SleepRequest(seconds=0.05))
        assert 2 <= client.connection_count(server.address) <= 3


async def test_connect_failure_is_retryable_connect_failed(secret):
    async with RpcClient(secret, RpcClientConfig(connect_timeout_s=2)) as client:
        with pytest.raises(ThreeFSError) as info:
            await DebugStub(client, ("127.0.0.1", free_port())).echo(EchoRequest())
    assert info.value.code == Code.RPC_CONNECT_FAILED
    assert info.value.retryable


async def test_client_must_be_opened(server, secret):
    client = RpcClient(secret)
    with pytest.raises(ThreeFSError) as info:
        await DebugStub(client, server.address).echo(EchoRequest())
    assert info.value.code == Code.CLIENT_CLOSED


async def test_calls_in_flight_fail_with_connection_closed_when_the_server_dies(
    server_factory, secret, eventually
):
    server = await server_factory()
    async with RpcClient(secret) as client:
        stub = DebugStub(client, server.address)
        outcomes: list[Code] = []

        async def sleeper() -> None:
            try:
                await stub.sleep(SleepRequest(seconds=10))
            except ThreeFSError as exc:
                outcomes.append(exc.code)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(sleeper)
            await eventually(lambda: server.service.sleeps_running == 3)
            await server.stop()
        assert outcomes == [Code.RPC_CONNECTION_CLOSED] * 3
        assert client.connection_count(server.address) == 0


async def test_reconnects_after_server_restart(server_factory, secret):
    first = await server_factory()
    port = first.address[1]
    async with RpcClient(secret) as client:
        stub = DebugStub(client, first.address)
        assert (await stub.echo(EchoRequest(text="one")))[0].text == "one"
        await first.stop()
        with pytest.raises(ThreeFSError) as info:
            await stub.echo(EchoRequest())
        assert info.value.code in (Code.RPC_CONNECTION_CLOSED, Code.RPC_CONNECT_FAILED)
        assert info.value.retryable
        second = await server_factory(port=port)
        assert (await stub.echo(EchoRequest(text="two")))[0].text == "two"
        assert client.connection_count(second.address) == 1


async def test_an_error_raised_inside_the_client_block_comes_out_unwrapped(server, secret):
    with pytest.raises(ThreeFSError) as info:
        async with RpcClient(secret) as client:
            await DebugStub(client, server.address).echo(EchoRequest(text="warm"))
            raise ThreeFSError(Code.META_NOT_FOUND, "raised by the caller")
    assert info.value.code is Code.META_NOT_FOUND
    with pytest.raises(KeyError):
        async with RpcClient(secret):
            raise KeyError("plain")
