"""Client retries are visible: each retry of a meta call is logged at DEBUG with its attempt
number, the error code and the request's idempotency id."""

from __future__ import annotations

import logging

import trio

from client.meta import MetaClient
from threefs.errors import Code, ThreeFSError
from threefs.rpc import RpcClient, RpcServer
from threefs.rpc.server import RpcService, rpc_method
from threefs.wire import meta as wire
from threefs.wire.meta import Caller

SECRET = "retry-log-secret"


class FlakyMeta(RpcService):
    """Answers MKDIR with a retryable error twice, then succeeds."""

    spec = wire.META_SERVICE

    def __init__(self) -> None:
        self.calls = 0

    @rpc_method(wire.MKDIR)
    async def mkdir(self, ctx, request: wire.MkdirRequest, payload) -> wire.MkdirResponse:
        self.calls += 1
        if self.calls <= 2:
            raise ThreeFSError(Code.KV_CONFLICT, "busy")
        raise ThreeFSError(Code.META_EXISTS, "there")  # the answer that ends the retries


async def test_each_retry_is_logged_with_attempt_code_and_request_id(caplog):
    service = FlakyMeta()
    server = RpcServer(SECRET, [service])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        async with RpcClient(SECRET) as rpc:
            meta = MetaClient(rpc, addresses=[f"127.0.0.1:{port}"], caller=Caller(uid=0, gid=0, admin=True))
            with caplog.at_level(logging.DEBUG, logger="client.meta"):
                try:
                    await meta.mkdir("/d")
                except ThreeFSError as exc:
                    assert exc.code == Code.META_EXISTS
        nursery.cancel_scope.cancel()
    retries = [r for r in caplog.records if r.name == "client.meta" and "retrying" in r.getMessage()]
    assert [r.attempt for r in retries] == [1, 2]
    assert {r.code for r in retries} == {"KV_CONFLICT"}
    tags = {r.request_id for r in retries}
    assert len(tags) == 1 and ":" in tags.pop()  # the same idempotency id on every try
