"""The frame codec: header layout, checks, the buffered reader and the buffer cache."""

from __future__ import annotations

import struct

import pytest
import trio
from crc32c import crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from threefs.errors import Code, ThreeFSError
from threefs.rpc.frame import HEADER_SIZE, MAGIC, BufferCache, FrameReader, decode_frame, encode_frame
from threefs.wire.debug import EchoRequest
from threefs.wire.envelope import Envelope, FrameKind

LIMIT = 1 << 20


def frame(request_id: int = 1, payload: bytes = b"", text: str = "t") -> bytes:
    envelope = Envelope(FrameKind.REQUEST, request_id, 1, 1, 100, EchoRequest(text=text))
    return bytes(encode_frame(envelope, payload)) + payload


class MemoryStream:
    """A Stream whose receives return the given chunks, then EOF."""

    peer = "memory"

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.received = 0

    async def receive_into(self, buffer: memoryview) -> int:
        await trio.lowlevel.checkpoint()
        if not self.chunks:
            return 0
        chunk = self.chunks.pop(0)
        size = min(len(chunk), len(buffer))
        buffer[:size] = chunk[:size]
        if size < len(chunk):
            self.chunks.insert(0, chunk[size:])
        self.received += size
        return size

    async def send_parts(self, parts) -> None:
        await trio.lowlevel.checkpoint()

    def send_nowait(self, parts) -> int:
        return 0

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def read_all(chunks: list[bytes], buffer_bytes: int = 4096, cache: BufferCache | None = None):
    reader = FrameReader(MemoryStream(chunks), LIMIT, buffer_bytes, cache)
    frames = []
    while (item := await reader.read_frame()) is not None:
        frames.append(item)
    return frames


def test_header_layout():
    data = frame(payload=b"abc")
    magic, version, flags, reserved, envelope_len, payload_len, crc = struct.unpack_from("<4sBBHIII", data)
    assert (magic, version, flags, reserved) == (MAGIC, 1, 0, 0)
    assert payload_len == 3 and HEADER_SIZE + envelope_len + payload_len == len(data)
    assert crc == crc32c(data[:16] + data[HEADER_SIZE:])


def test_decode_frame_round_trip():
    envelope, payload = decode_frame(frame(request_id=9, payload=b"xyz"), LIMIT)
    assert envelope.request_id == 9 and payload == b"xyz"


@pytest.mark.parametrize(
    "mutate, code",
    [
        (lambda d: b"NOPE" + d[4:], Code.RPC_BAD_FRAME),
        (lambda d: d[:4] + b"\x02" + d[5:], Code.RPC_VERSION_MISMATCH),
        (lambda d: d[:6] + b"\x01\x00" + d[8:], Code.RPC_BAD_FRAME),
        (lambda d: d[:-1] + bytes([d[-1] ^ 0x40]), Code.RPC_BAD_CHECKSUM),
        (lambda d: d[:12] + struct.pack("<I", LIMIT) + d[16:], Code.RPC_FRAME_TOO_LARGE),
        (lambda d: d[:-1], Code.RPC_BAD_FRAME),
        (lambda d: d[:10], Code.RPC_BAD_FRAME),
    ],
)
def test_decode_frame_refuses(mutate, code):
    with pytest.raises(ThreeFSError) as info:
        decode_frame(mutate(frame(payload=b"payload")), LIMIT)
    assert info.value.code == code


async def test_reader_parses_frames_split_at_every_byte():
    data = frame(1) + frame(2, b"p" * 10) + frame(3, b"q" * 3000)
    frames = await read_all([data[i : i + 1] for i in range(len(data))])
    assert [(e.request_id, bytes(p)) for e, p in frames] == [(1, b""), (2, b"p" * 10), (3, b"q" * 3000)]


async def test_reader_parses_many_frames_from_one_receive():
    data = b"".join(frame(i, bytes([i]) * i) for i in range(50))
    frames = await read_all([data], buffer_bytes=1 << 16)
    assert [(e.request_id, bytes(p)) for e, p in frames] == [(i, bytes([i]) * i) for i in range(50)]


async def test_reader_receives_large_payloads_directly():
    payload = bytes(range(256)) * 400  # larger than a quarter of the 4 KiB buffer
    stream = MemoryStream([frame(1, payload) + frame(2)])
    reader = FrameReader(stream, LIMIT, 4096)
    envelope, got = await reader.read_frame()
    assert isinstance(got, bytearray) and got == payload
    assert (await reader.read_frame())[0].request_id == 2
    assert await reader.read_frame() is None


async def test_reader_eof_mid_frame_is_connection_closed():
    with pytest.raises(ThreeFSError) as info:
        await read_all([frame(payload=b"abcdef")[:-2]])
    assert info.value.code == Code.RPC_CONNECTION_CLOSED


async def test_reader_refuses_an_oversized_frame_before_reading_its_body():
    header = bytearray(frame()[:HEADER_SIZE])
    struct.pack_into("<I", header, 12, LIMIT * 8)
    stream = MemoryStream([bytes(header), b"x" * 100])
    with pytest.raises(ThreeFSError) as info:
        await FrameReader(stream, LIMIT, 4096).read_frame()
    assert info.value.code == Code.RPC_FRAME_TOO_LARGE
    assert stream.received == HEADER_SIZE


def test_buffer_cache_reuses_only_buffers_nobody_holds():
    cache = BufferCache(1 << 20)
    held = cache.take(5000)
    other = cache.take(5000)
    assert other is not held
    other_id = id(other)
    del other
    again = cache.take(5000)
    assert id(again) == other_id and again is not held


async def test_cached_payload_held_by_a_handler_is_never_overwritten():
    cache = BufferCache(1 << 20)
    (first,) = await read_all([frame(1, b"a" * 5000)], cache=cache)
    (second,) = await read_all([frame(2, b"b" * 5000)], cache=cache)
    assert first[1] == b"a" * 5000 and second[1] == b"b" * 5000


def test_buffer_cache_respects_its_size():
    cache = BufferCache(10_000)
    kept = [cache.take(4000), cache.take(4000), cache.take(4000)]
    assert sum(len(b) for b in cache._buffers) <= 10_000
    assert len(kept[2]) == 4000
    assert BufferCache(0).take(10) == bytearray(10)


# --------------------------------------------------------------------------- fuzz (pure)

VALID = [frame(1), frame(2, b"payload"), frame(3, b"x" * 300, text="longer text")]


@st.composite
def mutated_frames(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(0, 4))):
        index = draw(st.integers(0, len(data) - 1))
        data[index] ^= 1 << draw(st.integers(0, 7))
    if draw(st.booleans()):
        struct.pack_into("<I", data, draw(st.sampled_from([8, 12])), draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        struct.pack_into("<I", data, 16, crc32c(bytes(data[:16]) + bytes(data[HEADER_SIZE:])))
    return bytes(data[: draw(st.integers(0, len(data)))])


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=300), mutated_frames()))
def test_decode_frame_raises_only_threefs_errors(data):
    try:
        decode_frame(data, LIMIT)
    except ThreeFSError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.binary(max_size=64), mutated_frames()), max_size=6), st.integers(1, 50))
def test_frame_reader_raises_only_threefs_errors(pieces, chunk):
    data = b"".join(pieces)

    async def run() -> None:
        try:
            await read_all([data[i : i + chunk] for i in range(0, len(data), chunk)], buffer_bytes=256)
        except ThreeFSError:
            pass

    trio.run(run)
