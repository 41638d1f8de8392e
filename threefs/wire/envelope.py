"""The RPC envelope that follows every frame header, and the messages of the auth handshake.

The envelope is a MessagePack array (``array_like``: no field names on the wire), so field order
is the wire format: append new fields at the end with a default, never reorder or remove.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated

import msgspec

__all__ = [
    "AUTH_KIND_CLUSTER",
    "AUTH_KIND_USER",
    "AuthChallenge",
    "AuthHello",
    "AuthOk",
    "Envelope",
    "FrameKind",
    "MAX_USER_NAME_BYTES",
    "NONCE_BYTES",
    "NIL_BODY",
    "USER_NAME_PATTERN",
]

U64 = Annotated[int, msgspec.Meta(ge=0)]  # MessagePack integers stop at 2**64 - 1
U32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]

# MessagePack ``nil``: the body of frames that carry none (error replies, auth frames without one).
NIL_BODY = msgspec.Raw(b"\xc0")


class FrameKind(IntEnum):
    """What a frame is. Requests flow client -> server; responses and errors flow back."""

    REQUEST = 0
    RESPONSE = 1
    ERROR = 2  # error_code / error_message are set; body is nil
    AUTH_CHALLENGE = 3  # server -> client, first frame on a connection; body: AuthChallenge
    AUTH_HELLO = 4  # client -> server, answer to the challenge; body: AuthHello
    AUTH_OK = 5  # server -> client, accepted; body: AuthOk


class Envelope(msgspec.Struct, array_like=True, frozen=True):
    """Routing and status of one frame.

    ``request_id`` matches a reply to its request (unique among a connection's calls in flight;
    0 for auth frames). ``timeout_ms`` is the time the caller still waits, relative so that clocks
    need not agree (0: no deadline). ``body`` is the MessagePack encoding of the method's request
    or response struct, decoded by the receiver against the method's type (``Raw`` keeps it
    undecoded until the method is known). On encode, ``body`` may hold the struct itself: it is
    encoded in place, which saves a second encoding pass.
    """

    kind: int
    request_id: U64
    service_id: U32 = 0
    method_id: U32 = 0
    timeout_ms: U64 = 0
    body: msgspec.Raw = NIL_BODY
    error_code: int = 0
    error_message: str = ""


AUTH_KIND_CLUSTER = "cluster"  # HMAC proof of the shared cluster secret (service-to-service)
AUTH_KIND_USER = "user"  # HMAC proof of a user's token key (clients; docs/security.md)
NONCE_BYTES = 32
MAX_USER_NAME_BYTES = 64
# A user name: letters, digits, ``_ . -``, not starting with ``.`` or ``-``, never ``:`` (which
# separates the name from the key in a token file).
USER_NAME_PATTERN = rf"^[A-Za-z0-9_][A-Za-z0-9_.-]{{0,{MAX_USER_NAME_BYTES - 1}}}\Z"


class AuthChallenge(msgspec.Struct, frozen=True):
    """Sent by the server when a connection opens: a fresh nonce and the auth kinds it accepts."""

    nonce: bytes
    kinds: list[str]


class AuthHello(msgspec.Struct, frozen=True):
    """The client's answer. ``kind`` selects the scheme, one of the challenge's ``kinds``.

    For ``cluster``: ``proof = HMAC-SHA256(secret, b"threefs-rpc-v1 client" + server_nonce +
    client_nonce)``; ``user`` is empty.
    For ``user``: ``user`` names the user (at most ``MAX_USER_NAME_BYTES``) and ``proof =
    HMAC-SHA256(user_key, b"threefs-rpc-v1 user client" + server_nonce + client_nonce +
    user)``. ``token`` is reserved and always empty: the token's key never crosses the wire.
    """

    kind: str
    nonce: bytes
    proof: bytes
    token: str = ""
    user: str = ""


class AuthOk(msgspec.Struct, frozen=True):
    """The server accepts and proves the secret too: ``proof = HMAC-SHA256(secret,
    b"threefs-rpc-v1 server" + client_nonce + server_nonce)`` (for ``user``: keyed with the
    user's key, label ``b"threefs-rpc-v1 user server"``, and the user name appended)."""

    proof: bytes
