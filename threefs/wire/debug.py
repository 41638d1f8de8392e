"""The Debug service (id 1): echo, sleep and fail, for tests and benchmarks.

Method ids are never reused; a retired id goes into ``RETIRED_METHOD_IDS`` with the reason.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from threefs.wire.common import MethodSpec, ServiceSpec
from threefs.wire.ids import ServiceId

__all__ = [
    "DEBUG_SERVICE",
    "ECHO",
    "ECHO_PARTS",
    "EchoPartsRequest",
    "EchoPartsResponse",
    "EchoRequest",
    "EchoResponse",
    "FAIL",
    "FailRequest",
    "FailResponse",
    "RETIRED_METHOD_IDS",
    "SLEEP",
    "SleepRequest",
    "SleepResponse",
]


class EchoRequest(msgspec.Struct, frozen=True):
    """Echo ``text`` and ``number`` back. The payload comes back unchanged unless
    ``drop_payload`` (a write-like call: the reply is tiny); ``reply_bytes`` > 0 asks for a
    payload of that many bytes (at most 64 MiB) instead (a read-like call)."""

    text: str = ""
    number: int = 0
    drop_payload: bool = False
    reply_bytes: Annotated[int, msgspec.Meta(ge=0, le=64 << 20)] = 0


class EchoResponse(msgspec.Struct, frozen=True):
    """``text``/``number`` as sent; ``payload_bytes`` is the size of the payload received."""

    text: str
    number: int
    payload_bytes: int


class SleepRequest(msgspec.Struct, frozen=True):
    """Sleep ``seconds`` (0 to 3600; for deadline tests); ``tag`` identifies the call."""

    seconds: Annotated[float, msgspec.Meta(ge=0, le=3600)]
    tag: str = ""


class SleepResponse(msgspec.Struct, frozen=True):
    """The tag back; ``remaining_ms`` is the deadline the handler saw (0: none)."""

    tag: str
    remaining_ms: int


class FailRequest(msgspec.Struct, frozen=True):
    """Raise ``ThreeFSError(code, message)``; ``code < 0`` raises a plain ``RuntimeError``
    instead (an unexpected failure, which must become INTERNAL)."""

    code: int
    message: str = ""


class FailResponse(msgspec.Struct, frozen=True):
    """Never sent: the Fail method always fails."""


class EchoPartsRequest(msgspec.Struct, frozen=True):
    """Echo the payload back in ``parts`` pieces (a method with ``payload_crc_in_body``: the
    frame CRC leaves payloads out). ``crc32c`` is the payload's checksum, which the server
    checks (RPC_BAD_CHECKSUM); with ``from_file`` the pieces are sent from a file (sendfile)."""

    crc32c: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
    parts: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1
    from_file: bool = False


class EchoPartsResponse(msgspec.Struct, frozen=True):
    """The CRC32C of each piece of the reply payload, in order."""

    part_crcs: list[int]


ECHO = MethodSpec(ServiceId.DEBUG, 1, "Debug.Echo", EchoRequest, EchoResponse)
SLEEP = MethodSpec(ServiceId.DEBUG, 2, "Debug.Sleep", SleepRequest, SleepResponse)
FAIL = MethodSpec(ServiceId.DEBUG, 3, "Debug.Fail", FailRequest, FailResponse)
ECHO_PARTS = MethodSpec(
    ServiceId.DEBUG, 4, "Debug.EchoParts", EchoPartsRequest, EchoPartsResponse, payload_crc_in_body=True
)

RETIRED_METHOD_IDS: dict[int, str] = {}

DEBUG_SERVICE = ServiceSpec(ServiceId.DEBUG, "Debug", (ECHO, SLEEP, FAIL, ECHO_PARTS), RETIRED_METHOD_IDS)
