"""The Debug service (echo, sleep, fail) and its typed stub, for tests and benchmarks."""

from __future__ import annotations

import os

import trio
from crc32c import crc32c

from threefs.errors import Code, ThreeFSError
from threefs.rpc.client import ServiceStub
from threefs.rpc.frame import PayloadSink
from threefs.rpc.server import CallContext, RpcService, rpc_method
from threefs.rpc.transport import Buffer, FileRegion, Part
from threefs.wire.debug import (
    DEBUG_SERVICE,
    ECHO,
    ECHO_PARTS,
    FAIL,
    SLEEP,
    EchoPartsRequest,
    EchoPartsResponse,
    EchoRequest,
    EchoResponse,
    FailRequest,
    SleepRequest,
    SleepResponse,
)

__all__ = ["DebugService", "DebugStub"]


class DebugService(RpcService):
    """Echo returns fields and payload; Sleep sleeps and counts how sleeps end (so tests can see a
    deadline cancel the handler); Fail raises the code asked for (a negative code raises a plain
    ``RuntimeError``)."""

    spec = DEBUG_SERVICE

    def __init__(self) -> None:
        self.sleeps_started = 0
        self.sleeps_finished = 0
        self.sleeps_cancelled = 0
        self.sleeps_running = 0
        self.max_sleeps_running = 0  # the most sleeps that ran at once
        self._reply_blob = b""  # kept so read-like benchmarks do not time an allocation

    @rpc_method(ECHO)
    async def echo(
        self, ctx: CallContext, request: EchoRequest, payload: Buffer
    ) -> tuple[EchoResponse, Buffer]:
        response = EchoResponse(text=request.text, number=request.number, payload_bytes=len(payload))
        if request.reply_bytes > 0:
            if len(self._reply_blob) != request.reply_bytes:
                self._reply_blob = bytes(request.reply_bytes)
            return response, self._reply_blob
        return response, b"" if request.drop_payload else payload

    @rpc_method(ECHO_PARTS)
    async def echo_parts(
        self, ctx: CallContext, request: EchoPartsRequest, payload: Buffer
    ) -> tuple[EchoPartsResponse, list[Part]]:
        if crc32c(payload) != request.crc32c:
            raise ThreeFSError(Code.RPC_BAD_CHECKSUM, f"payload CRC32C is not {request.crc32c:#010x}")
        data = memoryview(payload)
        step = -(-len(data) // request.parts) if len(data) else 0
        pieces = [data[i : i + step] for i in range(0, len(data), step)] if step else []
        parts: list[Part] = list(pieces)
        if request.from_file and pieces:
            fd = os.memfd_create("echo-parts", os.MFD_CLOEXEC)
            try:
                os.write(fd, data)
                parts = [FileRegion(os.dup(fd), i * step, len(piece)) for i, piece in enumerate(pieces)]
            finally:
                os.close(fd)
        return EchoPartsResponse(part_crcs=[crc32c(piece) for piece in pieces]), parts

    @rpc_method(SLEEP)
    async def sleep(self, ctx: CallContext, request: SleepRequest, payload: Buffer) -> SleepResponse:
        remaining = ctx.remaining()
        remaining_ms = 0 if remaining == float("inf") else int(remaining * 1000)
        self.sleeps_started += 1
        self.sleeps_running += 1
        self.max_sleeps_running = max(self.max_sleeps_running, self.sleeps_running)
        try:
            await trio.sleep(request.seconds)
        except trio.Cancelled:
            self.sleeps_cancelled += 1
            raise
        finally:
            self.sleeps_running -= 1
        self.sleeps_finished += 1
        return SleepResponse(tag=request.tag, remaining_ms=remaining_ms)

    @rpc_method(FAIL)
    async def fail(self, ctx: CallContext, request: FailRequest, payload: Buffer) -> None:
        if request.code < 0:
            raise RuntimeError(request.message or "debug failure")
        raise ThreeFSError(request.code, request.message)


class DebugStub(ServiceStub):
    """``await DebugStub(client, address).echo(EchoRequest(...), payload=...)``."""

    async def echo(
        self, request: EchoRequest, *, payload: Buffer = b"", timeout_s: float | None = None
    ) -> tuple[EchoResponse, bytes | bytearray]:
        return await self._call(ECHO, request, payload, timeout_s)

    async def echo_parts(
        self,
        request: EchoPartsRequest,
        *,
        payload: Buffer = b"",
        sink: PayloadSink | None = None,
        timeout_s: float | None = None,
    ) -> tuple[EchoPartsResponse, object]:
        return await self.client.call(
            self.address, ECHO_PARTS, request, payload=payload, timeout_s=timeout_s, sink=sink
        )

    async def sleep(self, request: SleepRequest, *, timeout_s: float | None = None) -> SleepResponse:
        response, _ = await self._call(SLEEP, request, b"", timeout_s)
        return response

    async def fail(self, request: FailRequest, *, timeout_s: float | None = None) -> None:
        await self._call(FAIL, request, b"", timeout_s)
