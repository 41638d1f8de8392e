"""Peers that misbehave: corrupt frames, no or wrong authentication. The server must answer or
close that one connection, log it once, and keep serving everyone else."""

from __future__ import annotations

import logging
import struct

import pytest
import trio

from threefs.errors import Code, ThreeFSError
from threefs.rpc import RpcClient, RpcServerConfig, TcpTransport
from threefs.rpc.debug import DebugStub
from threefs.rpc.frame import AUTH_MAX_FRAME_BYTES, FrameReader, encode_frame
from threefs.wire.debug import ECHO, EchoRequest
from threefs.wire.envelope import AuthOk, Envelope, FrameKind


def echo_frame(request_id: int = 7, text: str = "hi", payload: bytes = b"") -> bytearray:
    envelope = Envelope(
        FrameKind.REQUEST, request_id, ECHO.service_id, ECHO.method_id, 5000, EchoRequest(text)
    )
    return encode_frame(envelope, payload) + payload


async def assert_server_healthy(address, secret) -> None:
    async with RpcClient(secret) as client:
        response, _ = await DebugStub(client, address).echo(EchoRequest(text="healthy"))
    assert response.text == "healthy"


def server_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("threefs.rpc") and r.levelno >= 30]


async def test_valid_raw_frame_after_auth_is_answered(server, raw_peer):
    peer = await raw_peer(server.address)
    await peer.authenticate()
    await peer.send(bytes(echo_frame(request_id=42, payload=b"xyz")))
    envelope, payload = await peer.read_frame()
    assert envelope.kind == FrameKind.RESPONSE and envelope.request_id == 42
    assert payload == b"xyz"
    await peer.aclose()


def flip_bit(frame: bytearray, index: int) -> bytes:
    frame[index] ^= 0x01
    return bytes(frame)


@pytest.mark.parametrize(
    "corrupt, what",
    [
        (lambda f: flip_bit(f, len(f) - 1), "CRC"),  # a payload bit
        (lambda f: flip_bit(f, 25), "CRC"),  # an envelope bit
        (lambda f: flip_bit(f, 16), "CRC"),  # the CRC itself
        (lambda f: b"XFSR" + bytes(f[4:]), "magic"),
        (lambda f: bytes(f[:4]) + b"\x09" + bytes(f[5:]), "version"),
        (lambda f: bytes(f[:5]) + b"\x80" + bytes(f[6:]), "flags"),
    ],
)
async def test_corrupt_frame_closes_that_connection_only(server, raw_peer, secret, caplog, corrupt, what):
    bystander = await raw_peer(server.address)
    await bystander.authenticate()
    peer = await raw_peer(server.address)
    await peer.authenticate()
    with caplog.at_level(logging.INFO, logger="threefs.rpc"):
        await peer.send(corrupt(echo_frame(payload=b"payload")))
        assert await peer.read_until_closed() == []
    warnings = server_warnings(caplog)
    assert len(warnings) == 1 and what.lower() in warnings[0].lower()
    assert "127.0.0.1" in warnings[0]
    # Another connection opened before is untouched, and new ones work.
    await bystander.send(bytes(echo_frame(request_id=3)))
    envelope, _ = await bystander.read_frame()
    assert envelope.request_id == 3 and envelope.kind == FrameKind.RESPONSE
    await assert_server_healthy(server.address, secret)


async def test_oversized_length_is_refused_before_the_body_is_read(server_factory, raw_peer, secret, caplog):
    server = await server_factory(config=RpcServerConfig(max_frame_bytes=1 << 20))
    peer = await raw_peer(server.address)
    await peer.authenticate()
    header = bytearray(echo_frame()[:20])
    struct.pack_into("<I", header, 12, 1 << 30)  # claims a 1 GiB payload that never comes
    with caplog.at_level(logging.WARNING, logger="threefs.rpc"):
        await peer.send(bytes(header))
        assert await peer.read_until_closed(timeout_s=2) == []
    warnings = server_warnings(caplog)
    assert len(warnings) == 1 and "exceeds the limit" in warnings[0]
    await assert_server_healthy(server.address, secret)


async def test_unauthenticated_peer_cannot_send_a_large_frame(server, raw_peer, secret, caplog):
    """Before auth the limit is AUTH_MAX_FRAME_BYTES: a 64 KiB frame is refused from its header."""
    peer = await raw_peer(server.address)
    challenge, _ = await peer.read_frame()
    assert challenge.kind == FrameKind.AUTH_CHALLENGE
    header = bytearray(echo_frame()[:20])
    struct.pack_into("<I", header, 12, AUTH_MAX_FRAME_BYTES + 1)  # a payload that never comes
    with caplog.at_level(logging.WARNING, logger="threefs.rpc"):
        await peer.send(bytes(header))
        assert await peer.read_until_closed(timeout_s=2) == []
    warnings = server_warnings(caplog)
    assert len(warnings) == 1 and "exceeds the limit of 4096" in warnings[0]
    await assert_server_healthy(server.address, secret)


async def test_unauthenticated_request_gets_auth_failed_and_closed(server, raw_peer, secret, caplog):
    peer = await raw_peer(server.address)
    challenge, _ = await peer.read_frame()
    assert challenge.kind == FrameKind.AUTH_CHALLENGE
    with caplog.at_level(logging.INFO, logger="threefs.rpc"):
        await peer.send(bytes(echo_frame(request_id=99)))
        envelopes = await peer.read_until_closed()
    assert [(e.kind, e.request_id, e.error_code) for e in envelopes] == [
        (FrameKind.ERROR, 99, Code.RPC_AUTH_FAILED)
    ]
    assert len(server_warnings(caplog)) == 1
    assert server.service.sleeps_started == 0
    await assert_server_healthy(server.address, secret)


async def test_request_sent_without_reading_the_challenge_is_refused(server, raw_peer):
    peer = await raw_peer(server.address)
    await peer.send(bytes(echo_frame(request_id=5)))
    envelopes = await peer.read_until_closed()
    assert envelopes[0].kind == FrameKind.AUTH_CHALLENGE
    assert [(e.kind, e.error_code) for e in envelopes[1:]] == [(FrameKind.ERROR, Code.RPC_AUTH_FAILED)]


async def test_garbage_before_auth_closes(server, raw_peer, secret):
    peer = await raw_peer(server.address)
    await peer.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    envelopes = await peer.read_until_closed()
    assert [e.kind for e in envelopes] == [FrameKind.AUTH_CHALLENGE]
    await assert_server_healthy(server.address, secret)


async def test_silent_peer_is_dropped_after_the_auth_timeout(server_factory, raw_peer, caplog):
    server = await server_factory(config=RpcServerConfig(auth_timeout_s=0.2))
    peer = await raw_peer(server.address)
    with caplog.at_level(logging.WARNING, logger="threefs.rpc"):
        envelopes = await peer.read_until_closed(timeout_s=3)
    assert [e.kind for e in envelopes] == [FrameKind.AUTH_CHALLENGE]
    assert any("no authentication within" in m for m in server_warnings(caplog))


async def test_wrong_secret_is_refused_with_a_clear_error(server, caplog):
    async with RpcClient("not-the-secret") as client:
        with pytest.raises(ThreeFSError) as info:
            await DebugStub(client, server.address).echo(EchoRequest())
    assert info.value.code == Code.RPC_AUTH_FAILED
    assert "secret" in info.value.message
    assert not info.value.retryable
    assert server.service.sleeps_started == 0


async def test_server_that_cannot_prove_the_secret_is_refused(nursery, secret):
    """A fake server accepts any hello and answers a bogus proof: the client must notice."""

    async def impostor(stream) -> None:
        reader = FrameReader(stream, 1 << 20)
        challenge = {"nonce": b"n" * 32, "kinds": ["cluster"]}
        await stream.send_parts([encode_frame(Envelope(FrameKind.AUTH_CHALLENGE, 0, body=challenge))])
        await reader.read_frame()
        await stream.send_parts([encode_frame(Envelope(FrameKind.AUTH_OK, 0, body=AuthOk(proof=b"p" * 32)))])
        await trio.sleep(1)
        await stream.aclose()

    port = await nursery.start(TcpTransport().serve, "127.0.0.1", 0, impostor)
    async with RpcClient(secret) as client:
        with pytest.raises(ThreeFSError) as info:
            await DebugStub(client, ("127.0.0.1", port)).echo(EchoRequest())
    assert info.value.code == Code.RPC_AUTH_FAILED
    assert "failed to prove" in info.value.message


async def test_unexpected_frame_kind_after_auth_gets_an_error_reply(server, raw_peer):
    peer = await raw_peer(server.address)
    await peer.authenticate()
    stray = Envelope(FrameKind.RESPONSE, 11, ECHO.service_id, ECHO.method_id, body=EchoRequest())
    await peer.send(bytes(encode_frame(stray)))
    envelope, _ = await peer.read_frame()
    assert (envelope.kind, envelope.request_id, envelope.error_code) == (
        FrameKind.ERROR,
        11,
        Code.RPC_BAD_FRAME,
    )
    await peer.send(bytes(echo_frame(request_id=12)))
    envelope, _ = await peer.read_frame()
    assert (envelope.kind, envelope.request_id) == (FrameKind.RESPONSE, 12)


async def test_peer_vanishing_mid_frame_is_not_an_error(server, raw_peer, secret, caplog):
    peer = await raw_peer(server.address)
    await peer.authenticate()
    with caplog.at_level(logging.WARNING, logger="threefs.rpc"):
        await peer.send(bytes(echo_frame(payload=b"x" * 1000)[:500]))
        await peer.aclose()
        await assert_server_healthy(server.address, secret)
    assert server_warnings(caplog) == []
