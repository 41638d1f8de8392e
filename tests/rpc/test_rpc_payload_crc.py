"""Methods whose bodies checksum their payloads (``payload_crc_in_body``): the frame CRC leaves the
payload out, replies may be sent from files with sendfile, and a caller may have the reply payload
received straight into its own buffers (``PayloadSink``)."""

from __future__ import annotations

import os

import pytest
import trio
from crc32c import crc32c
from hypothesis import given, settings
from hypothesis import strategies as st

from threefs.errors import Code, ThreeFSError
from threefs.rpc import RpcClient, RpcServer
from threefs.rpc.auth import server_handshake
from threefs.rpc.debug import DebugService, DebugStub
from threefs.rpc.frame import (
    FLAG_PAYLOAD_CRC_IN_BODY,
    HEADER_SIZE,
    FrameReader,
    ScatteredPayload,
    decode_frame,
    encode_frame,
)
from threefs.rpc.transport import FileRegion, TcpStream, TcpTransport
from threefs.wire.debug import ECHO, ECHO_PARTS, EchoPartsRequest, EchoPartsResponse, EchoRequest
from threefs.wire.envelope import Envelope, FrameKind

SECRET = "test-cluster-secret"  # tests/rpc/conftest.py's


def parts_frame(payload: bytes, request_id: int = 1) -> bytearray:
    envelope = Envelope(
        FrameKind.REQUEST, request_id, ECHO_PARTS.service_id, ECHO_PARTS.method_id, 5000,
        EchoPartsRequest(crc32c=crc32c(payload)),
    )  # fmt: skip
    return encode_frame(envelope, payload, payload_crc_in_body=True)


def test_flagged_frame_crc_covers_envelope_not_payload():
    payload = b"chunk bytes" * 10
    frame = parts_frame(payload) + payload
    assert frame[5] == FLAG_PAYLOAD_CRC_IN_BODY
    corrupt_payload = bytearray(frame)
    corrupt_payload[-1] ^= 0xFF
    _, got = decode_frame(bytes(corrupt_payload), 1 << 20)  # the body's CRC, not the frame's, checks it
    assert got != payload
    corrupt_envelope = bytearray(frame)
    corrupt_envelope[HEADER_SIZE + 2] ^= 0x01
    with pytest.raises(ThreeFSError) as info:
        decode_frame(bytes(corrupt_envelope), 1 << 20)
    assert info.value.code in (Code.RPC_BAD_CHECKSUM, Code.RPC_BAD_FRAME)


def test_a_list_payload_needs_the_flag():
    envelope = Envelope(FrameKind.RESPONSE, 1, ECHO.service_id, ECHO.method_id, 0, EchoRequest())
    with pytest.raises(TypeError):
        encode_frame(envelope, [b"a", b"b"])


@pytest.mark.parametrize("from_file", [False, True])
@pytest.mark.parametrize("parts", [1, 3, 7])
async def test_echo_parts_round_trip(server, client, from_file, parts):
    payload = os.urandom(1_000_003)
    response, got = await DebugStub(client, server.address).echo_parts(
        EchoPartsRequest(crc32c=crc32c(payload), parts=parts, from_file=from_file), payload=payload
    )
    assert bytes(got) == payload
    assert len(response.part_crcs) == parts


async def test_bad_payload_checksum_is_refused_and_connection_stays(server, client):
    stub = DebugStub(client, server.address)
    with pytest.raises(ThreeFSError) as info:
        await stub.echo_parts(EchoPartsRequest(crc32c=1), payload=b"not that")
    assert info.value.code == Code.RPC_BAD_CHECKSUM
    response, _ = await stub.echo(EchoRequest(text="still"))
    assert response.text == "still"


async def test_sink_receives_into_caller_buffers_with_crcs(server, client):
    payload = os.urandom(3 << 20)
    out = bytearray(len(payload) + 10)
    view = memoryview(out)
    asked = []

    def sink(envelope: Envelope, payload_len: int) -> list[memoryview]:
        asked.append(payload_len)
        response = ECHO_PARTS.response_decoder.decode(envelope.body)
        assert isinstance(response, EchoPartsResponse)
        return [view[5 : 5 + (1 << 20)], view[5 + (1 << 20) : 5 + payload_len]]

    response, got = await DebugStub(client, server.address).echo_parts(
        EchoPartsRequest(crc32c=crc32c(payload), parts=3, from_file=True), payload=payload, sink=sink
    )
    assert asked == [len(payload)]
    assert isinstance(got, ScatteredPayload)
    assert bytes(out[5 : 5 + len(payload)]) == payload
    assert out[:5] == bytes(5) and out[-5:] == bytes(5)
    assert got.crcs == [crc32c(payload[: 1 << 20]), crc32c(payload[1 << 20 :])]


@pytest.mark.parametrize("answer", ["decline", "wrong size", "raises", "readonly"])
async def test_sink_that_does_not_fit_falls_back_to_a_buffer(server, client, answer):
    payload = os.urandom(100_000)

    def sink(envelope: Envelope, payload_len: int) -> list[memoryview] | None:
        if answer == "decline":
            return None
        if answer == "raises":
            raise RuntimeError("sink bug")
        if answer == "readonly":
            return [memoryview(bytes(payload_len))]
        return [memoryview(bytearray(payload_len - 1))]

    _, got = await DebugStub(client, server.address).echo_parts(
        EchoPartsRequest(crc32c=crc32c(payload)), payload=payload, sink=sink
    )
    assert bytes(got) == payload


@settings(max_examples=25, deadline=None)
@given(data=st.binary(max_size=300_000), parts=st.integers(1, 8), from_file=st.booleans())
def test_echo_parts_any_payload(data, parts, from_file):
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            server = RpcServer(SECRET, [DebugService()])
            port = await nursery.start(server.serve, "127.0.0.1", 0)
            async with RpcClient(SECRET) as client:
                response, got = await DebugStub(client, ("127.0.0.1", port)).echo_parts(
                    EchoPartsRequest(crc32c=crc32c(data), parts=parts, from_file=from_file), payload=data
                )
            nursery.cancel_scope.cancel()
        assert bytes(got) == data
        step = -(-len(data) // parts) if data else 0
        expected = [crc32c(data[i : i + step]) for i in range(0, len(data), step)] if step else []
        assert response.part_crcs == expected

    trio.run(main)


async def test_flag_on_a_method_without_it_is_refused(server, raw_peer):
    peer = await raw_peer(server.address)
    await peer.authenticate()
    envelope = Envelope(FrameKind.REQUEST, 5, ECHO.service_id, ECHO.method_id, 5000, EchoRequest(text="x"))
    await peer.send(bytes(encode_frame(envelope, b"abc", payload_crc_in_body=True)) + b"abc")
    reply, _ = await peer.read_frame()
    assert reply.kind == FrameKind.ERROR and reply.error_code == Code.RPC_BAD_FRAME
    await peer.send(bytes(encode_frame(envelope, b"abc")) + b"abc")  # the connection still works
    reply, payload = await peer.read_frame()
    assert reply.kind == FrameKind.RESPONSE and payload == b"abc"
    await peer.aclose()


async def test_file_region_is_sent_and_closed():
    left, right = trio.socket.socketpair()
    fd = os.memfd_create("region", os.MFD_CLOEXEC)
    os.write(fd, b"0123456789" * 100_000)
    region = FileRegion(os.dup(fd), 10, 500_000)
    sender, receiver = TcpStream(left, "left"), TcpStream(right, "right")
    got = bytearray()

    async def receive() -> None:
        buffer = memoryview(bytearray(65536))
        while len(got) < 500_004:
            n = await receiver.receive_into(buffer)
            got.extend(buffer[:n])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        await sender.send_parts([b"ab", region, b"cd"])
    assert bytes(got) == b"ab" + (b"0123456789" * 100_000)[10:500_010] + b"cd"
    assert region.fd == -1
    os.close(fd)
    await sender.aclose()
    await receiver.aclose()


async def test_reply_that_stalls_while_received_into_caller_buffer_closes_connection(nursery):
    """A call whose reply bytes are landing in the caller's buffer cannot just time out (the
    caller would get its buffer back while bytes still arrive): the connection is closed."""
    stalled = trio.Event()

    async def stalling_server(stream) -> None:
        reader = FrameReader(stream, 1 << 20)
        await server_handshake(stream, reader, SECRET.encode())
        request, _ = await reader.read_frame()
        reply = Envelope(
            FrameKind.RESPONSE, request.request_id, ECHO_PARTS.service_id, ECHO_PARTS.method_id, 0,
            EchoPartsResponse(part_crcs=[0]),
        )  # fmt: skip
        head = encode_frame(reply, b"x" * 1000, payload_crc_in_body=True)
        await stream.send_parts([head, b"x" * 10])  # 10 of the 1000 bytes, then nothing
        stalled.set()
        await trio.sleep_forever()

    port = await nursery.start(TcpTransport().serve, "127.0.0.1", 0, stalling_server)
    out = bytearray(1000)
    async with RpcClient(SECRET) as client:
        started = trio.current_time()
        with pytest.raises(ThreeFSError) as info:
            await client.call(
                ("127.0.0.1", port),
                ECHO_PARTS,
                EchoPartsRequest(crc32c=0),
                timeout_s=0.5,
                sink=lambda envelope, n: [memoryview(out)],
            )
        assert info.value.code == Code.RPC_CONNECTION_CLOSED
        assert "too slowly" in info.value.message
        assert trio.current_time() - started < 3
    assert stalled.is_set()
    assert out[:10] == b"x" * 10
