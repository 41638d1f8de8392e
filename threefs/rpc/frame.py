"""The RPC frame: a 20-byte header, the MessagePack envelope, then an optional raw payload.

Header (little endian): magic ``b"3FSR"`` (0-3), version (4), flags (5, must be 0), reserved
(6-7, must be 0), envelope length (8-11), payload length (12-15), CRC32C (16-19) of bytes 0-15 +
envelope + payload. ``FrameReader`` parses frames off a ``Stream`` with one buffered reader;
``decode_frame`` parses one whole frame from memory (used by tests and the fuzzer).
"""

from __future__ import annotations

import struct
import sys

import msgspec
from crc32c import crc32c

from threefs.errors import Code, ThreeFSError
from threefs.rpc.transport import Buffer, Stream
from threefs.wire.envelope import Envelope

__all__ = [
    "AUTH_MAX_FRAME_BYTES",
    "BufferCache",
    "HEADER_SIZE",
    "MAGIC",
    "VERSION",
    "FrameReader",
    "decode_envelope",
    "decode_frame",
    "encode_frame",
    "parse_header",
]

MAGIC = b"3FSR"
VERSION = 1
HEADER_SIZE = 20
_PREFIX_SIZE = 16  # the header bytes the CRC covers (everything before the CRC itself)
# Auth frames are a few hundred bytes; an unauthenticated peer may not send more than this, so it
# cannot make the server allocate or read a large frame.
AUTH_MAX_FRAME_BYTES = 4096
_HEADER = struct.Struct("<4sBBHIII")
_PREFIX = struct.Struct("<4sBBHII")
_CRC = struct.Struct("<I")

# Stateless codec objects, built once: building them per frame costs more than the encoding.
_ENCODER = msgspec.msgpack.Encoder()
_ENVELOPE_DECODER = msgspec.msgpack.Decoder(Envelope)


def encode_frame(envelope: Envelope, payload: Buffer = b"") -> bytearray:
    """Header + envelope as one buffer. The payload is not copied: send it right after.

    Raises ``msgspec.EncodeError`` / ``TypeError`` if the envelope's body cannot be encoded.
    """
    buf = bytearray(HEADER_SIZE)
    _ENCODER.encode_into(envelope, buf, HEADER_SIZE)
    payload_len = len(payload)
    _PREFIX.pack_into(buf, 0, MAGIC, VERSION, 0, 0, len(buf) - HEADER_SIZE, payload_len)
    with memoryview(buf) as view:
        crc = crc32c(view[HEADER_SIZE:], crc32c(view[:_PREFIX_SIZE]))
    if payload_len:
        crc = crc32c(payload, crc)
    _CRC.pack_into(buf, _PREFIX_SIZE, crc)
    return buf


def parse_header(data: Buffer, offset: int, max_frame_bytes: int) -> tuple[int, int, int]:
    """Check the header at ``data[offset:offset + HEADER_SIZE]``.

    Returns ``(envelope_len, payload_len, crc)``. Raises ``ThreeFSError`` with RPC_BAD_FRAME
    (magic, flags, reserved, empty envelope), RPC_VERSION_MISMATCH or RPC_FRAME_TOO_LARGE; after
    any of these the stream cannot be trusted.
    """
    magic, version, flags, reserved, envelope_len, payload_len, crc = _HEADER.unpack_from(data, offset)
    if magic != MAGIC:
        raise ThreeFSError(Code.RPC_BAD_FRAME, f"bad magic {magic!r}")
    if version != VERSION:
        raise ThreeFSError(Code.RPC_VERSION_MISMATCH, f"frame version {version}, this side speaks {VERSION}")
    if flags or reserved:
        raise ThreeFSError(Code.RPC_BAD_FRAME, f"unknown flags {flags:#x} / reserved {reserved:#x}")
    if envelope_len == 0:
        raise ThreeFSError(Code.RPC_BAD_FRAME, "empty envelope")
    if envelope_len + payload_len > max_frame_bytes:
        raise ThreeFSError(
            Code.RPC_FRAME_TOO_LARGE,
            f"frame of {envelope_len + payload_len} bytes exceeds the limit of {max_frame_bytes}",
        )
    return envelope_len, payload_len, crc


def decode_envelope(data: Buffer) -> Envelope:
    """Decode an envelope; ``data`` must not change afterwards (the body refers to it).

    Raises ``ThreeFSError(RPC_BAD_FRAME)`` if it is not a valid envelope.
    """
    try:
        return _ENVELOPE_DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise ThreeFSError(Code.RPC_BAD_FRAME, f"envelope does not decode: {exc}") from None


def _check_crc(expected: int, crc: int) -> None:
    if crc != expected:
        raise ThreeFSError(Code.RPC_BAD_CHECKSUM, f"CRC32C {crc:#010x} != header's {expected:#010x}")


def decode_frame(data: bytes, max_frame_bytes: int) -> tuple[Envelope, bytes]:
    """Parse exactly one whole frame. Raises ``ThreeFSError`` (never anything else) if it is
    short, long, malformed, too large or fails its CRC."""
    if len(data) < HEADER_SIZE:
        raise ThreeFSError(Code.RPC_BAD_FRAME, f"frame of {len(data)} bytes is shorter than its header")
    envelope_len, payload_len, expected = parse_header(data, 0, max_frame_bytes)
    if len(data) != HEADER_SIZE + envelope_len + payload_len:
        raise ThreeFSError(Code.RPC_BAD_FRAME, "frame length does not match its header")
    envelope_bytes = bytes(data[HEADER_SIZE : HEADER_SIZE + envelope_len])
    payload = bytes(data[HEADER_SIZE + envelope_len :])
    _check_crc(expected, crc32c(payload, crc32c(envelope_bytes, crc32c(data[:_PREFIX_SIZE]))))
    return decode_envelope(envelope_bytes), payload


class BufferCache:
    """Large receive buffers, reused once nobody but the cache refers to them.

    A fresh ``bytearray(n)`` costs a memset (and often page faults) as large as the copy from
    the socket; reusing the last buffers of the same size avoids both (4 MiB writes: about 15 %
    more throughput). A buffer is handed out again only when its reference count shows that the
    cache alone holds it, so a payload that a handler kept is never overwritten. At most
    ``max_bytes`` are kept; 0 disables the cache. Shared by all connections of a server/client.
    """

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._buffers: list[bytearray] = []
        self._bytes = 0

    def take(self, size: int) -> bytearray:
        """A buffer of exactly ``size`` bytes (old contents: the caller overwrites them all)."""
        free = None
        for buffer in self._buffers:
            # 3 references: the list, the loop variable and getrefcount's argument.
            if sys.getrefcount(buffer) == 3:
                if len(buffer) == size:
                    return buffer
                free = buffer
        fresh = bytearray(size)
        if free is not None and self._bytes + size > self._max_bytes:
            self._buffers.remove(free)
            self._bytes -= len(free)
        if self._bytes + size <= self._max_bytes:
            self._buffers.append(fresh)
            self._bytes += size
        return fresh


class FrameReader:
    """Reads frames off a stream through one reusable buffer.

    Small frames are parsed straight out of the buffer (one receive often brings many); a large
    envelope or payload is received directly into its own ``bytearray``, which is handed out
    without another copy. Only one task may call ``read_frame`` at a time.
    """

    def __init__(
        self,
        stream: Stream,
        max_frame_bytes: int,
        buffer_bytes: int = 256 << 10,
        cache: BufferCache | None = None,
    ) -> None:
        self._stream = stream
        self._cache = cache
        self.max_frame_bytes = max_frame_bytes  # may be lowered, e.g. until the peer authenticates
        self._buf = bytearray(buffer_bytes)
        self._view = memoryview(self._buf)
        self._direct_threshold = buffer_bytes // 4
        self._start = 0  # first unparsed byte
        self._end = 0  # end of received bytes

    async def read_frame(self) -> tuple[Envelope, bytes | bytearray] | None:
        """The next frame as ``(envelope, payload)``; None when the peer closed between frames.

        Raises ``ThreeFSError``: RPC_CONNECTION_CLOSED (closed mid-frame or a stream error), or a
        header/CRC/envelope error from ``parse_header`` / ``decode_envelope`` (the stream is then
        out of sync and must be closed).
        """
        if self._end - self._start < HEADER_SIZE and not await self._fill(HEADER_SIZE, eof_ok=True):
            return None
        start = self._start
        envelope_len, payload_len, expected = parse_header(self._buf, start, self.max_frame_bytes)
        crc = crc32c(self._view[start : start + _PREFIX_SIZE])
        self._start = start + HEADER_SIZE
        envelope_bytes, crc = await self._read_exact(envelope_len, crc)
        payload: bytes | bytearray = b""
        if payload_len:
            payload, crc = await self._read_exact(payload_len, crc)
        _check_crc(expected, crc)
        return decode_envelope(envelope_bytes), payload

    async def _read_exact(self, size: int, crc: int) -> tuple[bytes | bytearray, int]:
        """The next ``size`` bytes, and ``crc`` carried over them."""
        available = self._end - self._start
        if size > available and size > self._direct_threshold:
            # Large: receive straight into the buffer handed out, and checksum each piece while
            # it is still in the CPU cache.
            out = self._cache.take(size) if self._cache is not None else bytearray(size)
            with memoryview(out) as view:
                view[:available] = self._view[self._start : self._end]
                crc = crc32c(view[:available], crc)
                self._start = self._end = 0
                got = available
                while got < size:
                    received = await self._stream.receive_into(view[got:])
                    if not received:
                        raise ThreeFSError(
                            Code.RPC_CONNECTION_CLOSED, f"{self._stream.peer} closed mid-frame"
                        )
                    crc = crc32c(view[got : got + received], crc)
                    got += received
            return out, crc
        if size > available:
            await self._fill(size, eof_ok=False)
        start = self._start
        self._start = start + size
        with self._view[start : start + size] as piece:
            return bytes(piece), crc32c(piece, crc)

    async def _fill(self, size: int, eof_ok: bool) -> bool:
        """Receive until ``size`` unparsed bytes are buffered. False at a clean EOF (only when
        ``eof_ok`` and nothing is buffered)."""
        if self._start == self._end:
            self._start = self._end = 0
        elif self._start + size > len(self._buf):
            remaining = self._end - self._start
            # Slice the bytearray itself (a temporary copy): copying from a view of the same
            # buffer would overlap.
            self._buf[:remaining] = self._buf[self._start : self._end]
            self._start, self._end = 0, remaining
        while self._end - self._start < size:
            received = await self._stream.receive_into(self._view[self._end :])
            if not received:
                if eof_ok and self._start == self._end:
                    return False
                raise ThreeFSError(Code.RPC_CONNECTION_CLOSED, f"{self._stream.peer} closed mid-frame")
            self._end += received
        return True
