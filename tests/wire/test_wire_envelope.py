"""The envelope's wire form: field order is the format, so it is pinned here byte for byte."""

from __future__ import annotations

import msgspec

from threefs.wire.debug import EchoRequest
from threefs.wire.envelope import NIL_BODY, AuthHello, Envelope, FrameKind

encoder = msgspec.msgpack.Encoder()
decoder = msgspec.msgpack.Decoder(Envelope)


def test_request_envelope_bytes_are_pinned():
    envelope = Envelope(FrameKind.REQUEST, 5, 1, 2, 1000, EchoRequest(text="a"))
    data = encoder.encode(envelope)
    body = encoder.encode(EchoRequest(text="a"))
    # array of 8: kind, request id, service, method, timeout ms, body (inline), code, message
    assert data == b"\x98\x00\x05\x01\x02\xcd\x03\xe8" + body + b"\x00\xa0"


def test_body_stays_raw_until_the_method_is_known():
    data = encoder.encode(Envelope(FrameKind.REQUEST, 1, 1, 1, 10, EchoRequest(text="x", number=3)))
    envelope = decoder.decode(data)
    assert isinstance(envelope.body, msgspec.Raw)
    assert msgspec.msgpack.decode(envelope.body, type=EchoRequest) == EchoRequest(text="x", number=3)


def test_error_envelope_round_trip():
    data = encoder.encode(Envelope(FrameKind.ERROR, 9, error_code=3000, error_message="nope"))
    envelope = decoder.decode(data)
    assert (envelope.kind, envelope.request_id, envelope.error_code, envelope.error_message) == (
        FrameKind.ERROR,
        9,
        3000,
        "nope",
    )
    assert bytes(envelope.body) == bytes(NIL_BODY)


def test_trailing_fields_may_be_left_out_by_older_peers():
    envelope = decoder.decode(encoder.encode([1, 77]))
    assert envelope.kind == FrameKind.RESPONSE and envelope.request_id == 77 and envelope.error_code == 0


def test_auth_hello_has_a_kind_for_future_schemes():
    hello = msgspec.msgpack.decode(
        encoder.encode(AuthHello(kind="token", nonce=b"n", proof=b"", token="t")), type=AuthHello
    )
    assert hello.kind == "token" and hello.token == "t"
