"""Connection authentication: a mutual HMAC-SHA256 challenge-response, over the cluster secret
(services) or over a user's token key (clients; docs/security.md).

1. server -> client  AUTH_CHALLENGE  {nonce: 32 random bytes, kinds: ["cluster", "user"]}
2. client -> server  AUTH_HELLO      {kind: "cluster", nonce: 32 random bytes,
                                      proof: HMAC(secret, "threefs-rpc-v1 client" + Ns + Nc)}
                                 or  {kind: "user", user: NAME, nonce: ...,
                                      proof: HMAC(key, "threefs-rpc-v1 user client" + Ns + Nc + NAME)}
3. server -> client  AUTH_OK         {proof: HMAC(secret, "threefs-rpc-v1 server" + Nc + Ns)}
                                     (user: HMAC(key, "threefs-rpc-v1 user server" + Nc + Ns + NAME))
   or ERROR(RPC_AUTH_FAILED) and the server closes the connection.

Both nonces enter both proofs, so neither a proof nor a reply can be replayed on another
connection; the labels differ per kind and side, so no proof serves as another. A server offers
"user" only when it has a ``UserDirectory``. This proves who is at the other end; it does not
encrypt or sign the frames that follow.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import NoReturn

import msgspec

from threefs.errors import Code, ThreeFSError
from threefs.rpc.frame import FrameReader, encode_frame
from threefs.rpc.transport import Stream
from threefs.rpc.users import Identity, UserDirectory, UserKey, UserToken
from threefs.wire.envelope import (
    AUTH_KIND_CLUSTER,
    AUTH_KIND_USER,
    MAX_USER_NAME_BYTES,
    NONCE_BYTES,
    AuthChallenge,
    AuthHello,
    AuthOk,
    Envelope,
    FrameKind,
)

__all__ = [
    "AuthResult",
    "Credential",
    "client_handshake",
    "normalize_credential",
    "normalize_secret",
    "server_handshake",
]

log = logging.getLogger("threefs.rpc.auth")

_CLIENT_LABEL = b"threefs-rpc-v1 client"
_SERVER_LABEL = b"threefs-rpc-v1 server"
_USER_CLIENT_LABEL = b"threefs-rpc-v1 user client"
_USER_SERVER_LABEL = b"threefs-rpc-v1 user server"
# What a client authenticates with: the cluster secret (bytes) or a user token.
Credential = bytes | UserToken
_CHALLENGE_DECODER = msgspec.msgpack.Decoder(AuthChallenge)
_HELLO_DECODER = msgspec.msgpack.Decoder(AuthHello)
_OK_DECODER = msgspec.msgpack.Decoder(AuthOk)


def normalize_secret(secret: str | bytes) -> bytes:
    """The cluster secret as bytes; raises ``ThreeFSError(INVALID_ARG)`` if it is empty."""
    data = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not data:
        raise ThreeFSError(Code.INVALID_ARG, "the cluster secret must not be empty")
    return data


def normalize_credential(credential: str | bytes | UserToken) -> Credential:
    """A ``UserToken`` as it is; a cluster secret as bytes (see ``normalize_secret``)."""
    return credential if isinstance(credential, UserToken) else normalize_secret(credential)


@dataclass(frozen=True)
class AuthResult:
    """How a connection authenticated: ``kind`` and, for a user, the identity and the key the
    user proved (so the server can tell when that key is no longer the user's)."""

    kind: str
    identity: Identity | None = None
    key: bytes = b""


def _proof(secret: bytes, label: bytes, first: bytes, second: bytes, user: bytes = b"") -> bytes:
    return hmac.new(secret, label + first + second + user, hashlib.sha256).digest()


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


async def server_handshake(
    stream: Stream, reader: FrameReader, secret: bytes, users: UserDirectory | None = None
) -> AuthResult:
    """Run the server side; returns how the peer authenticated. ``users``: where user tokens
    are checked (None: only the cluster secret is accepted).

    Raises ``ThreeFSError``: RPC_AUTH_FAILED (after telling the peer), RPC_CONNECTION_CLOSED or a
    frame error. The caller closes the stream on any error and bounds the time taken.
    """
    server_nonce = secrets.token_bytes(NONCE_BYTES)
    kinds = [AUTH_KIND_CLUSTER] if users is None else [AUTH_KIND_CLUSTER, AUTH_KIND_USER]
    challenge = AuthChallenge(nonce=server_nonce, kinds=kinds)
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
    if len(hello.nonce) != NONCE_BYTES:
        await _refuse(stream, 0, f"the client nonce must be {NONCE_BYTES} bytes")
    if hello.kind == AUTH_KIND_USER and users is not None:
        return await _server_user(stream, hello, server_nonce, users)
    if hello.kind != AUTH_KIND_CLUSTER:
        await _refuse(stream, 0, f"unsupported auth kind {hello.kind!r} (this server accepts {kinds})")
    expected = _proof(secret, _CLIENT_LABEL, server_nonce, hello.nonce)
    if not hmac.compare_digest(hello.proof, expected):
        await _refuse(stream, 0, "wrong cluster secret")
    proof = _proof(secret, _SERVER_LABEL, hello.nonce, server_nonce)
    await _send(stream, Envelope(FrameKind.AUTH_OK, 0, body=AuthOk(proof=proof)))
    return AuthResult(AUTH_KIND_CLUSTER)


async def _server_user(
    stream: Stream, hello: AuthHello, server_nonce: bytes, users: UserDirectory
) -> AuthResult:
    """Check a user's proof against the directory's key, refreshing the directory once when the
    name is unknown or the proof does not match (the user or key may be a moment old). The
    peer hears the same refusal for an unknown user and a wrong key; the log tells them apart."""
    name = hello.user
    if not name or len(name.encode()) > MAX_USER_NAME_BYTES:
        await _refuse(stream, 0, "a user hello must name the user (at most 64 bytes)")
    user_bytes = name.encode()

    def verified(entry: UserKey | None) -> bool:
        if entry is None:
            return False
        expected = _proof(entry.key, _USER_CLIENT_LABEL, server_nonce, hello.nonce, user_bytes)
        return hmac.compare_digest(hello.proof, expected)

    entry = users.get(name)
    if not verified(entry):
        await users.refresh()
        entry = users.get(name)
    if entry is None or not verified(entry):
        why = "unknown user" if entry is None else "wrong key"
        log.warning("refused user %r from %s: %s", name, stream.peer, why)
        await _refuse(stream, 0, f"user {name!r}: unknown user or wrong token")
    proof = _proof(entry.key, _USER_SERVER_LABEL, hello.nonce, server_nonce, user_bytes)
    await _send(stream, Envelope(FrameKind.AUTH_OK, 0, body=AuthOk(proof=proof)))
    return AuthResult(AUTH_KIND_USER, entry.identity, entry.key)


async def client_handshake(stream: Stream, reader: FrameReader, credential: Credential) -> None:
    """Run the client side with the cluster secret (bytes) or a ``UserToken``. Raises
    ``ThreeFSError(RPC_AUTH_FAILED)`` if the server refuses the credential, does not offer its
    kind or cannot prove it knows it; RPC_CONNECTION_CLOSED if the stream ends; or a frame
    error."""
    peer = stream.peer
    envelope = await _expect(reader, FrameKind.AUTH_CHALLENGE)
    try:
        challenge = _CHALLENGE_DECODER.decode(envelope.body)
    except msgspec.DecodeError as exc:
        raise ThreeFSError(Code.RPC_AUTH_FAILED, f"{peer} sent a malformed auth challenge: {exc}") from None
    client_nonce = secrets.token_bytes(NONCE_BYTES)
    if isinstance(credential, UserToken):
        if AUTH_KIND_USER not in challenge.kinds:
            raise ThreeFSError(Code.RPC_AUTH_FAILED, f"{peer} does not accept user tokens")
        user = credential.name.encode()
        key, server_label, what = credential.key, _USER_SERVER_LABEL, f"the token of user {credential.name!r}"
        proof = _proof(key, _USER_CLIENT_LABEL, challenge.nonce, client_nonce, user)
        hello = AuthHello(kind=AUTH_KIND_USER, nonce=client_nonce, proof=proof, user=credential.name)
    else:
        if AUTH_KIND_CLUSTER not in challenge.kinds:
            raise ThreeFSError(Code.RPC_AUTH_FAILED, f"{peer} does not accept cluster-secret auth")
        user, key, server_label, what = b"", credential, _SERVER_LABEL, "the cluster secret"
        proof = _proof(key, _CLIENT_LABEL, challenge.nonce, client_nonce)
        hello = AuthHello(kind=AUTH_KIND_CLUSTER, nonce=client_nonce, proof=proof)
    await _send(stream, Envelope(FrameKind.AUTH_HELLO, 0, body=hello))
    envelope = await _expect(reader, FrameKind.AUTH_OK)
    try:
        ok = _OK_DECODER.decode(envelope.body)
    except msgspec.DecodeError as exc:
        raise ThreeFSError(Code.RPC_AUTH_FAILED, f"{peer} sent a malformed auth reply: {exc}") from None
    expected = _proof(key, server_label, client_nonce, challenge.nonce, user)
    if not hmac.compare_digest(ok.proof, expected):
        raise ThreeFSError(Code.RPC_AUTH_FAILED, f"{peer} failed to prove {what}")


async def _expect(reader: FrameReader, kind: FrameKind) -> Envelope:
    frame = await reader.read_frame()
    if frame is None:
        raise ThreeFSError(Code.RPC_CONNECTION_CLOSED, "the server closed the connection during auth")
    envelope, _ = frame
    if envelope.kind == FrameKind.ERROR:
        raise ThreeFSError(
            envelope.error_code,
            f"server refused authentication: {envelope.error_message} (check the secret or token)",
        )
    if envelope.kind != kind:
        raise ThreeFSError(Code.RPC_AUTH_FAILED, f"expected auth frame {kind.name}, got kind {envelope.kind}")
    return envelope
