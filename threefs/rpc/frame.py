"""The RPC frame: a 20-byte header, the MessagePack envelope, then an optional raw payload.

Header (little endian): magic ``b"3FSR"`` (0-3), version (4), flags (5), reserved (6-7, must be
0), envelope length (8-11), payload length (12-15), CRC32C (16-19) of bytes 0-15 + envelope +
payload. ``FrameReader`` parses frames off a ``Stream`` with one buffered reader; ``decode_frame``
parses one whole frame from memory (used by tests and the fuzzer).

Flags: ``FLAG_PAYLOAD_CRC_IN_BODY`` (0x01) says the CRC covers bytes 0-15 and the envelope only,
because the body carries the payload's own checksums (a chunk read's result, an update's
``crc32c``), which the receiver checks end to end. Only methods whose spec says
``payload_crc_in_body`` send it; a server refuses it on any other method. It saves the payload's
second CRC pass on both sides and lets storage send chunk files with ``sendfile`` untouched.
"""

from __future__ import annotations

import logging
import struct
import sys
from collections.abc import Callable, Sequence

import msgspec
from crc32c import crc32c

from threefs.errors import Code, ThreeFSError
from threefs.rpc.transport import Buffer, Part, Stream
from threefs.wire.envelope import Envelope

__all__ = [
    "AUTH_MAX_FRAME_BYTES",
    "BufferCache",
    "FLAG_PAYLOAD_CRC_IN_BODY",
    "PayloadSink",
    "ScatteredPayload",
    "HEADER_SIZE",
    "MAGIC",
    "VERSION",
    "FrameReader",
    "decode_envelope",
    "decode_frame",
    "encode_frame",
    "parse_header",
    "payload_size",
]

log = logging.getLogger("threefs.rpc.frame")

MAGIC = b"3FSR"
VERSION = 1
HEADER_SIZE = 20
_PREFIX_SIZE = 16  # the header bytes the CRC covers (everything before the CRC itself)
FLAG_PAYLOAD_CRC_IN_BODY = 0x01
_KNOWN_FLAGS = FLAG_PAYLOAD_CRC_IN_BODY
# Auth frames are a few hundred bytes; an unauthenticated peer may not send more than this, so it
# cannot make the server allocate or read a large frame.
AUTH_MAX_FRAME_BYTES = 4096
_HEADER = struct.Struct("<4sBBHIII")
_PREFIX = struct.Struct("<4sBBHII")
_CRC = struct.Struct("<I")

# Stateless codec objects, built once: building them per frame costs more than the encoding.
_ENCODER = msgspec.msgpack.Encoder()
_ENVELOPE_DECODER = msgspec.msgpack.Decoder(Envelope)


def payload_size(payload: Buffer | Sequence[Part]) -> int:
    """Bytes in a payload given as one buffer or as a list of parts."""
    if type(payload) is list:
        return sum(map(len, payload))
    return len(payload)


def encode_frame(
    envelope: Envelope, payload: Buffer | Sequence[Part] = b"", *, payload_crc_in_body: bool = False
) -> bytearray:
    """Header + envelope as one buffer. The payload is not copied: send it right after.

    A payload given as a list of parts (buffers and file regions) is allowed only with
    ``payload_crc_in_body`` (its bytes are not read here). Raises ``msgspec.EncodeError`` /
    ``TypeError`` if the envelope's body cannot be encoded.
    """
    buf = bytearray(HEADER_SIZE)
    _ENCODER.encode_into(envelope, buf, HEADER_SIZE)
    if type(payload) is list and not payload_crc_in_body:
        raise TypeError("a payload of parts needs payload_crc_in_body")
    payload_len = payload_size(payload)
    flags = FLAG_PAYLOAD_CRC_IN_BODY if payload_crc_in_body else 0
    _PREFIX.pack_into(buf, 0, MAGIC, VERSION, flags, 0, len(buf) - HEADER_SIZE, payload_len)
    with memoryview(buf) as view:
        crc = crc32c(view[HEADER_SIZE:], crc32c(view[:_PREFIX_SIZE]))
    if payload_len and not payload_crc_in_body:
        crc = crc32c(payload, crc)  # type: ignore[arg-type]
    _CRC.pack_into(buf, _PREFIX_SIZE, crc)
    return buf


def parse_header(data: Buffer, offset: int, max_frame_bytes: int) -> tuple[int, int, int, int]:
    """Check the header at ``data[offset:offset + HEADER_SIZE]``.

    Returns ``(envelope_len, payload_len, flags, crc)``. Raises ``ThreeFSError`` with RPC_BAD_FRAME
    (magic, flags, reserved, empty envelope), RPC_VERSION_MISMATCH or RPC_FRAME_TOO_LARGE; after
    any of these the stream cannot be trusted.
    """
    magic, version, flags, reserved, envelope_len, payload_len, crc = _HEADER.unpack_from(data, offset)
    if magic != MAGIC:
        raise ThreeFSError(Code.RPC_BAD_FRAME, f"bad magic {magic!r}")
    if version != VERSION:
        raise ThreeFSError(Code.RPC_VERSION_MISMATCH, f"frame version {version}, this side speaks {VERSION}")
    if flags & ~_KNOWN_FLAGS or reserved:
        raise ThreeFSError(Code.RPC_BAD_FRAME, f"unknown flags {flags:#x} / reserved {reserved:#x}")
    if envelope_len == 0:
        raise ThreeFSError(Code.RPC_BAD_FRAME, "empty envelope")
    if envelope_len + payload_len > max_frame_bytes:
        raise ThreeFSError(
            Code.RPC_FRAME_TOO_LARGE,
            f"frame of {envelope_len + payload_len} bytes exceeds the limit of {max_frame_bytes}",
        )
    return envelope_len, payload_len, flags, crc


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
    envelope_len, payload_len, flags, expected = parse_header(data, 0, max_frame_bytes)
    if len(data) != HEADER_SIZE + envelope_len + payload_len:
        raise ThreeFSError(Code.RPC_BAD_FRAME, "frame length does not match its header")
    envelope_bytes = bytes(data[HEADER_SIZE : HEADER_SIZE + envelope_len])
    payload = bytes(data[HEADER_SIZE + envelope_len :])
    crc = crc32c(envelope_bytes, crc32c(data[:_PREFIX_SIZE]))
    if not flags & FLAG_PAYLOAD_CRC_IN_BODY:
        crc = crc32c(payload, crc)
    _check_crc(expected, crc)
    return decode_envelope(envelope_bytes), payload


def _ask_sink(sink: PayloadSink, envelope: Envelope, payload_len: int) -> list[memoryview] | None:
    """The sink's views, or None when it declines, fails, or gives views that do not add up."""
    try:
        views = sink(envelope, payload_len)
    except Exception:
        log.exception("payload sink failed; receiving into a buffer instead")
        return None
    if views is None:
        return None
    if sum(map(len, views)) != payload_len or any(
        view.readonly or view.format != "B" or not view.c_contiguous for view in views
    ):
        log.error("payload sink gave views that do not fit %d bytes; receiving into a buffer", payload_len)
        return None
    return views


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


class ScatteredPayload:
    """A payload that a ``PayloadSink`` had received straight into the caller's buffers:
    ``views`` (as the sink gave them, filled) and ``crcs``, the CRC32C of each view's bytes,
    computed as they arrived."""

    __slots__ = ("crcs", "views")

    def __init__(self, views: list[memoryview], crcs: list[int]) -> None:
        self.views = views
        self.crcs = crcs

    def __len__(self) -> int:
        return sum(map(len, self.views))


# Called with the (CRC-checked) envelope of a frame flagged FLAG_PAYLOAD_CRC_IN_BODY and its
# payload length, before the payload is read: writable byte views whose lengths add up to the
# payload length to receive it into, or None to receive it into a buffer of its own as usual.
PayloadSink = Callable[[Envelope, int], list[memoryview] | None]


class FrameReader:
    """Reads frames off a stream through one reusable buffer.

    Small frames are parsed straight out of the buffer (one receive often brings many); a large
    envelope or payload is received directly into its own ``bytearray``, which is handed out
    without another copy, or, through a ``PayloadSink``, into the caller's own buffers. Only
    one task may call ``read_frame`` at a time. ``last_flags`` holds the flags of the frame
    ``read_frame`` returned last.
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
        self.last_flags = 0

    async def read_frame(
        self, sink: PayloadSink | None = None
    ) -> tuple[Envelope, bytes | bytearray | ScatteredPayload] | None:
        """The next frame as ``(envelope, payload)``; None when the peer closed between frames.

        With ``FLAG_PAYLOAD_CRC_IN_BODY`` the payload is not checked here (the caller checks it
        against the body), and ``sink``, when given, may have it received into its own views
        (the payload is then a ``ScatteredPayload``). Raises ``ThreeFSError``:
        RPC_CONNECTION_CLOSED (closed mid-frame or a stream error), or a header/CRC/envelope
        error from ``parse_header`` / ``decode_envelope`` (the stream is then out of sync and
        must be closed).
        """
        if self._end - self._start < HEADER_SIZE and not await self._fill(HEADER_SIZE, eof_ok=True):
            return None
        start = self._start
        envelope_len, payload_len, flags, expected = parse_header(self._buf, start, self.max_frame_bytes)
        crc = crc32c(self._view[start : start + _PREFIX_SIZE])
        self._start = start + HEADER_SIZE
        envelope_bytes, crc = await self._read_exact(envelope_len, crc)
        self.last_flags = flags
        if flags & FLAG_PAYLOAD_CRC_IN_BODY:
            _check_crc(expected, crc)
            envelope = decode_envelope(envelope_bytes)
            if not payload_len:
                return envelope, b""
            views = _ask_sink(sink, envelope, payload_len) if sink is not None else None
            if views is not None:
                return envelope, ScatteredPayload(views, await self._receive_views(views))
            return envelope, (await self._read_exact(payload_len, 0))[0]
        payload: bytes | bytearray = b""
        if payload_len:
            payload, crc = await self._read_exact(payload_len, crc)
        _check_crc(expected, crc)
        return decode_envelope(envelope_bytes), payload

    async def _receive_views(self, views: list[memoryview]) -> list[int]:
        """Fill ``views`` in order from the stream (bytes already buffered first); the CRC32C of
        each, computed piece by piece while the bytes are still in the CPU cache."""
        crcs = []
        for view in views:
            size = len(view)
            got = min(self._end - self._start, size)
            crc = 0
            if got:
                view[:got] = self._view[self._start : self._start + got]
                crc = crc32c(view[:got])
                self._start += got
                if self._start == self._end:
                    self._start = self._end = 0
            while got < size:
                received = await self._stream.receive_into(view[got:])
                if not received:
                    raise ThreeFSError(Code.RPC_CONNECTION_CLOSED, f"{self._stream.peer} closed mid-frame")
                crc = crc32c(view[got : got + received], crc)
                got += received
            crcs.append(crc)
        return crcs

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
