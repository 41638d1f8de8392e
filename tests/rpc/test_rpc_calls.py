"""Calls through RpcClient against a live Debug server: results, payloads, errors, deadlines."""

from __future__ import annotations

import hashlib
import logging
import os

import msgspec
import pytest
import trio

from threefs.errors import Code, ThreeFSError
from threefs.rpc import RpcClient, RpcClientConfig, RpcServerConfig
from threefs.rpc.debug import DebugStub
from threefs.wire.common import MethodSpec
from threefs.wire.debug import ECHO, EchoRequest, EchoResponse, FailRequest, SleepRequest
from threefs.wire.ids import ServiceId


async def test_echo_round_trip(server, client):
    stub = DebugStub(client, server.address)
    response, payload = await stub.echo(EchoRequest(text="héllo", number=-7), payload=b"bulk bytes")
    assert response == EchoResponse(text="héllo", number=-7, payload_bytes=10)
    assert bytes(payload) == b"bulk bytes"
    # The untyped entry point gives the same answer.
    response2, payload2 = await client.call(server.address, ECHO, EchoRequest(text="x"))
    assert response2 == EchoResponse(text="x", number=0, payload_bytes=0)
    assert payload2 == b""


async def test_address_forms_share_one_pool(server, client):
    host, port = server.address
    await client.call(f"{host}:{port}", ECHO, EchoRequest())
    await client.call((host, port), ECHO, EchoRequest())
    assert client.connection_count(server.address) == 1


async def test_many_concurrent_calls_on_one_connection_reply_out_of_order(server, client):
    stub = DebugStub(client, server.address)
    finished: list[int] = []

    async def sleeper(index: int) -> None:
        # Later calls sleep less, so replies come back in roughly reverse order.
        response = await stub.sleep(SleepRequest(seconds=(40 - index) * 0.002, tag=f"call-{index}"))
        assert response.tag == f"call-{index}"
        finished.append(index)

    async with trio.open_nursery() as nursery:
        for index in range(40):
            nursery.start_soon(sleeper, index)
    assert sorted(finished) == list(range(40))
    assert finished != sorted(finished)
    assert server.service.max_sleeps_running > 1
    assert client.connection_count(server.address) == 1


async def test_4mib_payload_round_trip_intact(server, client):
    payload = os.urandom(4 << 20)
    response, echoed = await DebugStub(client, server.address).echo(EchoRequest(text="bulk"), payload=payload)
    assert response.payload_bytes == len(payload)
    assert len(echoed) == len(payload)
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()


async def test_payloads_of_many_sizes(server, client):
    stub = DebugStub(client, server.address)
    for size in (1, 1000, 65535, 65537, 256 << 10, (1 << 20) + 3):
        payload = os.urandom(size)
        _, echoed = await stub.echo(EchoRequest(), payload=payload)
        assert bytes(echoed) == payload, size
        response, read = await stub.echo(EchoRequest(reply_bytes=size))
        assert len(read) == size and response.payload_bytes == 0


@pytest.mark.parametrize(
    "code",
    [Code.NOT_FOUND, Code.META_NOT_EMPTY, Code.STORAGE_CHUNK_NOT_COMMITTED, Code.RPC_SERVER_OVERLOADED],
)
async def test_handler_error_is_raised_with_the_same_code(server, client, code):
    with pytest.raises(ThreeFSError) as info:
        await DebugStub(client, server.address).fail(
            FailRequest(code=int(code), message=f"because {code.name}")
        )
    assert info.value.code == code
    assert info.value.message == f"because {code.name}"


async def test_unregistered_error_code_becomes_internal(server, client):
    with pytest.raises(ThreeFSError) as info:
        await DebugStub(client, server.address).fail(FailRequest(code=999_999, message="from the future"))
    assert info.value.code == Code.INTERNAL
    assert "999999" in info.value.message and "from the future" in info.value.message


async def test_plain_exception_becomes_internal_logged_once_and_server_keeps_serving(server, client, caplog):
    stub = DebugStub(client, server.address)
    with caplog.at_level(logging.ERROR, logger="threefs.rpc"):
        with pytest.raises(ThreeFSError) as info:
            await stub.fail(FailRequest(code=-1, message="kaboom"))
    assert info.value.code == Code.INTERNAL
    assert "RuntimeError: kaboom" in info.value.message
    records = [r for r in caplog.records if r.name.startswith("threefs.rpc")]
    assert len(records) == 1 and records[0].exc_info is not None
    assert server.address[0] in records[0].getMessage()
    response, _ = await stub.echo(EchoRequest(text="still here"))
    assert response.text == "still here"


async def test_unknown_service_and_method_answer_errors_and_keep_the_connection(server, client):
    unknown_service = MethodSpec(ServiceId.META, 1, "Meta.Nothing", EchoRequest, EchoResponse)
    unknown_method = MethodSpec(ServiceId.DEBUG, 999, "Debug.Nothing", EchoRequest, EchoResponse)
    await client.call(server.address, ECHO, EchoRequest())
    with pytest.raises(ThreeFSError) as info:
        await client.call(server.address, unknown_service, EchoRequest())
    assert info.value.code == Code.RPC_UNKNOWN_SERVICE
    with pytest.raises(ThreeFSError) as info:
        await client.call(server.address, unknown_method, EchoRequest())
    assert info.value.code == Code.RPC_UNKNOWN_METHOD
    response, _ = await client.call(server.address, ECHO, EchoRequest(text="after"))
    assert response.text == "after"
    assert client.connection_count(server.address) == 1


class WrongEchoRequest(msgspec.Struct, frozen=True):
    text: int  # the server expects a str


async def test_invalid_body_answers_invalid_body_and_keeps_the_connection(server, client):
    wrong = MethodSpec(ServiceId.DEBUG, ECHO.method_id, "Debug.EchoWrong", WrongEchoRequest, EchoResponse)
    with pytest.raises(ThreeFSError) as info:
        await client.call(server.address, wrong, WrongEchoRequest(text=5))
    assert info.value.code == Code.RPC_INVALID_BODY
    assert "text" in info.value.message
    response, _ = await client.call(server.address, ECHO, EchoRequest(text="fine"))
    assert response.text == "fine"
    assert client.connection_count(server.address) == 1


async def test_request_of_the_wrong_type_is_refused_locally(server, client):
    with pytest.raises(ThreeFSError) as info:
        await client.call(server.address, ECHO, SleepRequest(seconds=1))
    assert info.value.code == Code.INVALID_ARG


async def test_deadline_exceeded_cancels_the_server_handler(server, client, eventually):
    stub = DebugStub(client, server.address)
    started = trio.current_time()
    with pytest.raises(ThreeFSError) as info:
        await stub.sleep(SleepRequest(seconds=30), timeout_s=0.2)
    assert info.value.code == Code.RPC_DEADLINE_EXCEEDED
    assert info.value.retryable
    assert trio.current_time() - started < 2
    await eventually(lambda: server.service.sleeps_cancelled == 1)
    assert server.service.sleeps_finished == 0
    assert client.connection_count(server.address) == 1
    assert (await stub.echo(EchoRequest(text="next")))[0].text == "next"


async def test_server_sees_the_time_remaining(server, client):
    response = await DebugStub(client, server.address).sleep(SleepRequest(seconds=0, tag="t"), timeout_s=3)
    assert 2000 < response.remaining_ms <= 3000


async def test_caller_cancellation_forgets_the_call(server, client, eventually):
    stub = DebugStub(client, server.address)
    with trio.move_on_after(0.05) as scope:
        await stub.sleep(SleepRequest(seconds=0.2))
    assert scope.cancelled_caught
    # The server is not told; its late reply is dropped and the connection carries on.
    await eventually(lambda: server.service.sleeps_finished == 1)
    assert (await stub.echo(EchoRequest(text="ok")))[0].text == "ok"
    assert client.connection_count(server.address) == 1


async def test_frame_limits_are_enforced_on_both_sides(server_factory, secret):
    server = await server_factory(config=RpcServerConfig(max_frame_bytes=1 << 20))
    async with RpcClient(secret, RpcClientConfig(max_frame_bytes=1 << 20)) as client:
        stub = DebugStub(client, server.address)
        with pytest.raises(ThreeFSError) as info:
            await stub.echo(EchoRequest(), payload=bytes(2 << 20))
        assert info.value.code == Code.RPC_FRAME_TOO_LARGE
        with pytest.raises(ThreeFSError) as info:
            await stub.echo(EchoRequest(reply_bytes=2 << 20))
        assert info.value.code == Code.RPC_FRAME_TOO_LARGE
        assert (await stub.echo(EchoRequest(text="ok")))[0].text == "ok"


async def test_backpressure_bounds_requests_in_flight_per_connection(server_factory, secret):
    server = await server_factory(config=RpcServerConfig(max_in_flight_per_connection=2))
    async with RpcClient(secret, RpcClientConfig(pool_size_per_address=1)) as client:
        stub = DebugStub(client, server.address)
        async with trio.open_nursery() as nursery:
            for index in range(8):
                nursery.start_soon(stub.sleep, SleepRequest(seconds=0.02, tag=str(index)))
    assert server.service.sleeps_finished == 8
    assert server.service.max_sleeps_running == 2


async def test_payload_must_be_bytes_like_and_memoryviews_count_bytes(server, client):
    stub = DebugStub(client, server.address)
    with pytest.raises(ThreeFSError) as info:
        await stub.echo(EchoRequest(), payload="text")  # type: ignore[arg-type]
    assert info.value.code == Code.INVALID_ARG
    words = memoryview(bytearray(range(16))).cast("I")  # 4 items, 16 bytes
    response, echoed = await stub.echo(EchoRequest(), payload=words)
    assert response.payload_bytes == 16 and bytes(echoed) == bytes(range(16))


async def test_short_and_long_deadlines_on_one_connection(server, client):
    stub = DebugStub(client, server.address)
    results: dict[str, object] = {}

    async def long_call() -> None:
        results["long"] = (await stub.sleep(SleepRequest(seconds=0.3, tag="long"), timeout_s=5)).tag

    async def short_call() -> None:
        try:
            await stub.sleep(SleepRequest(seconds=5), timeout_s=0.1)
        except ThreeFSError as exc:
            results["short"] = exc.code

    async with trio.open_nursery() as nursery:
        nursery.start_soon(long_call)
        nursery.start_soon(short_call)
    assert results == {"long": "long", "short": Code.RPC_DEADLINE_EXCEEDED}
