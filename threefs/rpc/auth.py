"""Connection authentication: a mutual HMAC-SHA256 challenge-response over the cluster secret.

1. server -> client  AUTH_CHALLENGE  {nonce: 32 random bytes, kinds: ["cluster"]}
2. client -> server  AUTH_HELLO      {kind: "cluster", nonce: 32 random bytes,
                                      proof: HMAC(secret, "threefs-rpc-v1 client" + Ns + Nc)}
3. server -> client  AUTH_OK         {proof: HMAC(secret, "threefs-rpc-v1 server" + Nc + Ns)}
   or ERROR(RPC_AUTH_FAILED) and the server closes the connection.

Both nonces enter both proofs, so neither a proof nor a reply can be replayed on another
connection. ``kind`` leaves room for a user-token scheme (DESIGN section 10). This proves who is at
the other end; it does not encrypt or sign the frames that follow.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import NoReturn

import msgspec

from threefs.errors import Code, ThreeFSError
from threefs.rpc.frame import FrameReader, encode_frame
from threefs.rpc.transport import Stream
from threefs.wire.envelope import (
    AUTH_KIND_CLUSTER,
    NONCE_BYTES,
    AuthChallenge,
    AuthHello,
    AuthOk,
    Envelope,
    FrameKind,
)

__all__ = ["client_handshake", "normalize_secret", "server_handshake"]

log = logging.getLogger("threefs.rpc.auth")

_CLIENT_LABEL = b"threefs-rpc-v1 client"
_SERVER_LABEL = b"threefs-rpc-v1 server"
_CHALLENGE_DECODER = msgspec.msgpack.Decoder(AuthChallenge)
_HELLO_DECODER = msgspec.msgpack.Decoder(AuthHello)
_OK_DECODER = msgspec.msgpack.Decoder(AuthOk)


def normalize_secret(secret: str | bytes) -> bytes:
    """The cluster secret as bytes; raises ``ThreeFSError(INVALID_ARG)`` if it is empty."""
    data = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not data:
        raise ThreeFSError(Code.INVALID_ARG, "the cluster secret must not be empty")
    return data


def _proof(secret: bytes, label: bytes, first: bytes, second: bytes) -> bytes:
    return hmac.new(secret, label + first + second, hashlib.sha256).digest()


async def _send(stream: Stream, envelope: Envelope) -> None:
    await stream.send_parts([encode_frame(envelope)])


async def _refuse(stream: Stream, request_id: int, message: str) -> NoReturn:
    """Tell the peer why (best effort), then raise RPC_AUTH_FAILED for the server's log."""
    reply = Envelope(FrameKind.ERROR, request_id, error_code=Code.RPC_AUTH_FAILED, error_message=message)
    try:
        await _send(stream, reply)
    except ThreeFSError:
        pass  # the peer is gone already; the caller logs the refusal
    raise ThreeFSError(Code.RPC_AUTH_FAILED, message)


async def server_handshake(stream: Stream, reader: FrameReader, secret: bytes) -> str:
    """Run the server side; returns the auth kind that succeeded.

    Raises ``ThreeFSError``: RPC_AUTH_FAILED (after telling the peer), RPC_CONNECTION_CLOSED or a
    frame error. The caller closes the stream on any error and bounds the time taken.
    """
    server_nonce = secrets.token_bytes(NONCE_BYTES)
    challenge = AuthChallenge(nonce=server_nonce, kinds=[AUTH_KIND_CLUSTER])
    await _send(stream, Envelope(FrameKind.AUTH_CHALLENGE, 0, body=challenge))
    frame = await reader.read_frame()
    if frame is None:
        raise ThreeFSError(Code.RPC_CONNECTION_CLOSED, "closed before authenticating")
    envelope, _ = frame
    if envelope.kind != FrameKind.AUTH_HELLO:
        await _refuse(
            stream, envelope.request_id, f"not authenticated (frame kind {envelope.kind} before auth)"
        )
    try:
        hello = _HELLO_DECODER.decode(envelope.body)
    except msgspec.DecodeError as exc:
        await _refuse(stream, 0, f"malformed auth hello: {exc}")
    if hello.kind != AUTH_KIND_CLUSTER:
        await _refuse(stream, 0, f"unsupported auth kind {hello.kind!r}")
    expected = _proof(secret, _CLIENT_LABEL, server_nonce, hello.nonce)
    if len(hello.nonce) != NONCE_BYTES or not hmac.compare_digest(hello.proof, expected):
        await _refuse(stream, 0, "wrong cluster secret")
    proof = _proof(secret, _SERVER_LABEL, hello.nonce, server_nonce)
    await _send(stream, Envelope(FrameKind.AUTH_OK, 0, body=AuthOk(proof=proof)))
    return hello.kind


async def client_handshake(stream: Stream, reader: FrameReader, secret: bytes) -> None:
    """Run the client side. Raises ``ThreeFSError(RPC_AUTH_FAILED)`` if the server refuses the
    secret or cannot prove it, RPC_CONNECTION_CLOSED if the stream ends, or a frame error."""
    peer = stream.peer
    envelope = await _expect(reader, FrameKind.AUTH_CHALLENGE)
    try:
        challenge = _CHALLENGE_DECODER.decode(envelope.body)
    except msgspec.DecodeError as exc:
        raise ThreeFSError(Code.RPC_AUTH_FAILED, f"{peer} sent a malformed auth challenge: {exc}") from None
    if AUTH_KIND_CLUSTER not in challenge.kinds:
        raise ThreeFSError(Code.RPC_AUTH_FAILED, f"{peer} does not accept cluster-secret auth")
    client_nonce = secrets.token_bytes(NONCE_BYTES)
    proof = _proof(secret, _CLIENT_LABEL, challenge.nonce, client_nonce)
    hello = AuthHello(kind=AUTH_KIND_CLUSTER, nonce=client_nonce, proof=proof)
    await _send(stream, Envelope(FrameKind.AUTH_HELLO, 0, body=hello))
    envelope = await _expect(reader, FrameKind.AUTH_OK)
    try:
        ok = _OK_DECODER.decode(envelope.body)
    except msgspec.DecodeError as exc:
        raise ThreeFSError(Code.RPC_AUTH_FAILED, f"{peer} sent a malformed auth reply: {exc}") from None
    expected = _proof(secret, _SERVER_LABEL, client_nonce, challenge.nonce)
    if not hmac.compare_digest(ok.proof, expected):
        raise ThreeFSError(Code.RPC_AUTH_FAILED, f"{peer} failed to prove the cluster secret")


async def _expect(reader: FrameReader, kind: FrameKind) -> Envelope:
    frame = await reader.read_frame()
    if frame is None:
        raise ThreeFSError(Code.RPC_CONNECTION_CLOSED, "the server closed the connection during auth")
    envelope, _ = frame
    if envelope.kind == FrameKind.ERROR:
        raise ThreeFSError(
            envelope.error_code, f"server refused authentication: {envelope.error_message} (check the secret)"
        )
    if envelope.kind != kind:
        raise ThreeFSError(Code.RPC_AUTH_FAILED, f"expected auth frame {kind.name}, got kind {envelope.kind}")
    return envelope
