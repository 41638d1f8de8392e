"""Inline handlers (``RpcService.inline_handlers``): run in place on the connection, answer like
task handlers (responses, ThreeFSError codes, INTERNAL for bugs), and keep the connection up."""

from __future__ import annotations

import logging

import pytest
import trio

from threefs.errors import Code, ThreeFSError
from threefs.rpc import RpcClient, RpcClientConfig, RpcServer
from threefs.rpc.debug import DebugService, DebugStub
from threefs.wire.debug import (
    ECHO,
    FAIL,
    EchoRequest,
    EchoResponse,
    FailRequest,
    FailResponse,
    SleepRequest,
)
from threefs.wire.meta import STAT

SECRET = "inline-test-secret"


class InlineDebug(DebugService):
    """Echo and Fail served inline (Sleep stays a task handler)."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_calls = 0

    def inline_handlers(self):
        def echo(ctx, request: EchoRequest, payload) -> EchoResponse:
            self.inline_calls += 1
            return EchoResponse(text=request.text.upper(), number=request.number, payload_bytes=len(payload))

        def fail(ctx, request: FailRequest, payload) -> FailResponse:
            self.inline_calls += 1
            if request.code == -2:
                return EchoResponse(text="", number=0, payload_bytes=0)  # the wrong type: a bug
            if request.code < 0:
                raise RuntimeError("inline bug")
            raise ThreeFSError(Code(request.code), request.message)

        return {ECHO: echo, FAIL: fail}


async def test_inline_handlers_answer_and_errors_keep_the_connection(caplog):
    service = InlineDebug()
    server = RpcServer(SECRET, [service])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        async with RpcClient(SECRET, RpcClientConfig(pool_size_per_address=1)) as client:
            address = ("127.0.0.1", port)
            stub = DebugStub(client, address)
            response, _ = await stub.echo(EchoRequest(text="abc", number=3), payload=b"xyz")
            assert response == EchoResponse(text="ABC", number=3, payload_bytes=3)
            with pytest.raises(ThreeFSError) as err:
                await client.call(address, FAIL, FailRequest(code=int(Code.META_EXISTS), message="there"))
            assert err.value.code == Code.META_EXISTS and "there" in err.value.message
            with caplog.at_level(logging.ERROR, logger="threefs.rpc.server"):
                for code in (-1, -2):
                    with pytest.raises(ThreeFSError) as err:
                        await client.call(address, FAIL, FailRequest(code=code))
                    assert err.value.code == Code.INTERNAL
            assert "inline bug" in caplog.text and "EchoResponse" in caplog.text
            # many at once on one connection, and a task handler alongside
            results = []

            async def one(i: int) -> None:
                response, _ = await stub.echo(EchoRequest(text=f"n{i}", number=i))
                results.append(response.number)

            async with trio.open_nursery() as calls:
                calls.start_soon(stub.sleep, SleepRequest(seconds=0.01))
                for i in range(50):
                    calls.start_soon(one, i)
            assert sorted(results) == list(range(50))
            assert client.connection_count(address) == 1
        assert service.inline_calls == 1 + 3 + 50 and service.sleeps_finished == 1
        nursery.cancel_scope.cancel()


def test_an_inline_handler_for_a_method_of_another_service_is_refused():
    class Wrong(DebugService):
        def inline_handlers(self):
            return {STAT: lambda ctx, request, payload: None}

    with pytest.raises(ValueError, match="not in"):
        RpcServer(SECRET, [Wrong()])
