"""Small types shared by every service schema: method and service specs, empty messages.

A ``MethodSpec`` is the one canonical definition of a method (service id, method id, name,
request and response types); servers and client stubs both refer to it and never to each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

__all__ = ["Empty", "MethodSpec", "ServiceSpec", "paired_method"]


class Empty(msgspec.Struct, frozen=True):
    """A request or response without fields."""


@dataclass(frozen=True)
class MethodSpec:
    """One RPC method: its ids, its name and the request/response struct types.

    ``payload_crc_in_body``: the request's and the response's bodies carry the checksums of
    their payloads (and the receiving code checks them), so frames of this method leave the
    payload out of the frame CRC (``threefs.rpc.frame.FLAG_PAYLOAD_CRC_IN_BODY``).

    ``request_decoder`` / ``response_decoder`` are built once here so the hot path never builds
    a decoder.
    """

    service_id: int
    method_id: int
    name: str
    request_type: type[msgspec.Struct]
    response_type: type[msgspec.Struct]
    payload_crc_in_body: bool = False
    request_decoder: Any = field(init=False, repr=False, compare=False)
    response_decoder: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for kind, tp in (("Request", self.request_type), ("Response", self.response_type)):
            if not (isinstance(tp, type) and issubclass(tp, msgspec.Struct)):
                raise TypeError(f"{self.name}: {kind.lower()} type must be a msgspec.Struct, not {tp!r}")
        object.__setattr__(self, "request_decoder", msgspec.msgpack.Decoder(self.request_type))
        object.__setattr__(self, "response_decoder", msgspec.msgpack.Decoder(self.response_type))


def paired_method(
    service_id: int,
    service_name: str,
    method_id: int,
    name: str,
    namespace: Mapping[str, Any],
    *,
    payload_crc_in_body: bool = False,
) -> MethodSpec:
    """The ``MethodSpec`` of ``<service_name>.<name>``, whose types are ``<name>Request`` and
    ``<name>Response`` in ``namespace`` (a schema module's ``globals()``): the naming rule of
    every service schema, written once."""
    return MethodSpec(
        service_id,
        method_id,
        f"{service_name}.{name}",
        namespace[f"{name}Request"],
        namespace[f"{name}Response"],
        payload_crc_in_body,
    )


@dataclass(frozen=True)
class ServiceSpec:
    """A service: its id, name, methods and the method ids it retired (id -> why).

    Raises ``ValueError`` at construction (import time) when two methods share an id or name,
    a method reuses a retired id, or a method names another service's id.
    """

    service_id: int
    name: str
    methods: tuple[MethodSpec, ...]
    retired_method_ids: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids: set[int] = set()
        names: set[str] = set()
        for method in self.methods:
            if method.service_id != self.service_id:
                raise ValueError(
                    f"{self.name}.{method.name}: service id {method.service_id} != {self.service_id}"
                )
            if method.method_id in ids or method.method_id in self.retired_method_ids:
                raise ValueError(f"{self.name}.{method.name}: method id {method.method_id} reused")
            if method.name in names:
                raise ValueError(f"{self.name}: method name {method.name!r} used twice")
            ids.add(method.method_id)
            names.add(method.name)

    def method(self, method_id: int) -> MethodSpec | None:
        """The method with ``method_id``, or None."""
        for method in self.methods:
            if method.method_id == method_id:
                return method
        return None
