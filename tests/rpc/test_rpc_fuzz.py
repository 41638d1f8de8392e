"""Fuzz a live server over real sockets with random, hand-built and mutated frames, before and
after authentication. After every batch a fresh client must still get a correct answer, every
frame the server sent must be well formed, and nothing but the Debug.Fail handler may have
logged an error (a traceback from the RPC layer itself is a bug)."""

from __future__ import annotations

import logging
import socket
import struct

import trio
from crc32c import crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from threefs.errors import Code, ThreeFSError
from threefs.rpc import RpcClient, RpcServer, RpcServerConfig
from threefs.rpc.auth import client_handshake
from threefs.rpc.debug import DebugService, DebugStub
from threefs.rpc.frame import HEADER_SIZE, FrameReader, encode_frame
from threefs.rpc.transport import TcpStream
from threefs.wire.debug import EchoRequest, FailRequest, SleepRequest
from threefs.wire.envelope import Envelope, FrameKind

SECRET = "fuzz-secret"
FUZZ_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=10,
)
bodies = st.one_of(
    msgpack_values,
    st.builds(
        EchoRequest,
        st.text(max_size=16),
        st.integers(-(2**63), 2**63 - 1),
        st.booleans(),
        st.integers(0, 4096),
    ),
    st.builds(SleepRequest, st.floats(0, 0.01), st.text(max_size=4)),
    st.builds(FailRequest, st.integers(-5, 7000), st.text(max_size=16)),
)


@st.composite
def built_frames(draw) -> bytes:
    """A well-formed frame (good CRC) with arbitrary envelope contents."""
    envelope = Envelope(
        kind=draw(st.integers(0, 7)),
        request_id=draw(st.integers(0, 2**64 - 1)),
        service_id=draw(st.integers(0, 5)),
        method_id=draw(st.integers(0, 5)),
        timeout_ms=draw(st.integers(0, 2**64 - 1) | st.integers(1, 5000)),
        body=draw(bodies),
    )
    payload = draw(st.binary(max_size=64))
    return bytes(encode_frame(envelope, payload)) + payload


@st.composite
def garbage_envelope_frames(draw) -> bytes:
    """A correct header and CRC around bytes that are not an envelope."""
    envelope = draw(st.binary(min_size=1, max_size=64))
    header = bytearray(struct.pack("<4sBBHIII", b"3FSR", 1, 0, 0, len(envelope), 0, 0))
    struct.pack_into("<I", header, 16, crc32c(envelope, crc32c(bytes(header[:16]))))
    return bytes(header) + envelope


@st.composite
def mutated_frames(draw) -> bytes:
    """A built frame with bit flips, tampered lengths or header fields (CRC fixed up or not),
    then maybe truncated."""
    data = bytearray(draw(built_frames()))
    for _ in range(draw(st.integers(0, 3))):
        data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
    if draw(st.booleans()):
        struct.pack_into("<I", data, draw(st.sampled_from([8, 12])), draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        data[draw(st.integers(4, 7))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        struct.pack_into("<I", data, 16, crc32c(bytes(data[HEADER_SIZE:]), crc32c(bytes(data[:16]))))
    return bytes(data[: draw(st.integers(0, len(data)))])


fuzz_frames = st.one_of(st.binary(max_size=128), built_frames(), garbage_envelope_frames(), mutated_frames())


class ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def send_one(port: int, data: bytes, authenticate: bool) -> list[tuple[int, int]]:
    """Send ``data`` on a new connection, half-close, and read until the server closes.
    Returns ``(kind, error_code)`` of each frame received after the handshake."""
    sock = trio.socket.socket()
    await sock.connect(("127.0.0.1", port))
    stream = TcpStream(sock, "fuzzer")
    reader = FrameReader(stream, 1 << 30)
    received: list[tuple[int, int]] = []
    try:
        if authenticate:
            await client_handshake(stream, reader, SECRET.encode())
        try:
            await stream.send_parts([data])
            sock.shutdown(socket.SHUT_WR)
        except (ThreeFSError, OSError):
            pass  # the server may already have closed on an earlier part
        with trio.fail_after(10):  # the server must close: it saw our EOF
            while True:
                try:
                    frame = await reader.read_frame()
                except ThreeFSError as exc:
                    assert exc.code == Code.RPC_CONNECTION_CLOSED, exc  # a reset, never a bad frame
                    break
                if frame is None:
                    break
                envelope = frame[0]
                assert envelope.kind in (FrameKind.AUTH_CHALLENGE, FrameKind.RESPONSE, FrameKind.ERROR)
                if envelope.kind == FrameKind.ERROR:
                    Code(envelope.error_code)  # a registered code
                received.append((envelope.kind, envelope.error_code))
    finally:
        await stream.aclose()
    return received


def fuzz_live_server(batch: list[bytes], authenticate: bool) -> list[list[tuple[int, int]]]:
    """Send each item of ``batch`` on its own connection; returns what came back for each."""
    errors = ErrorRecords()
    replies: list[list[tuple[int, int]]] = []
    logging.getLogger("threefs.rpc").addHandler(errors)

    async def main() -> None:
        server = RpcServer(SECRET, [DebugService()], RpcServerConfig(max_frame_bytes=1 << 20))
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve, "127.0.0.1", 0)
            for data in batch:
                replies.append(await send_one(port, data, authenticate))
            async with RpcClient(SECRET) as client:
                response, payload = await DebugStub(client, ("127.0.0.1", port)).echo(
                    EchoRequest(text="alive"), payload=b"ok"
                )
            assert response.text == "alive" and payload == b"ok"
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        logging.getLogger("threefs.rpc").removeHandler(errors)
    assert [m for m in errors.messages if not m.startswith("Debug.Fail")] == []
    return replies


@FUZZ_SETTINGS
@given(st.lists(fuzz_frames, min_size=20, max_size=80))
def test_fuzz_live_server_after_auth(batch):
    fuzz_live_server(batch, authenticate=True)


@FUZZ_SETTINGS
@given(st.lists(fuzz_frames, min_size=20, max_size=80))
def test_fuzz_live_server_before_auth(batch):
    fuzz_live_server(batch, authenticate=False)


def test_fuzz_harness_sees_replies_errors_and_closes():
    """The harness must observe the server's answers, or the fuzz tests could not fail."""

    def request(service_id: int, method_id: int, body: object) -> bytes:
        return bytes(encode_frame(Envelope(FrameKind.REQUEST, 1, service_id, method_id, 1000, body)))

    good = request(1, 1, EchoRequest(text="x"))
    bad_crc = good[:-1] + bytes([good[-1] ^ 1])
    batch = [good, request(9, 1, EchoRequest()), request(1, 9, EchoRequest()), request(1, 1, [1, 2]), bad_crc]
    response, error = FrameKind.RESPONSE, FrameKind.ERROR
    assert fuzz_live_server(batch, authenticate=True) == [
        [(response, 0)],
        [(error, Code.RPC_UNKNOWN_SERVICE)],
        [(error, Code.RPC_UNKNOWN_METHOD)],
        [(error, Code.RPC_INVALID_BODY)],
        [],
    ]
    assert fuzz_live_server([good], authenticate=False) == [
        [(FrameKind.AUTH_CHALLENGE, 0), (error, Code.RPC_AUTH_FAILED)]
    ]
