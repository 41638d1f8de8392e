"""Typed configuration of the RPC server and client (sections of a service's TOML config)."""

from __future__ import annotations

from threefs.config import Section
from threefs.errors import Code, ThreeFSError

__all__ = ["DEFAULT_MAX_FRAME_BYTES", "RpcClientConfig", "RpcServerConfig"]

# A 64 MiB chunk (the largest chunk size a layout allows) plus room for its envelope.
DEFAULT_MAX_FRAME_BYTES = (64 << 20) + (1 << 20)


def _check_positive(section: Section, *names: str) -> None:
    for name in names:
        if getattr(section, name) <= 0:
            raise ThreeFSError(Code.CONFIG_INVALID, f"{type(section).__name__}.{name} must be > 0")


def _check_non_negative(section: Section, *names: str) -> None:
    for name in names:
        if getattr(section, name) < 0:
            raise ThreeFSError(Code.CONFIG_INVALID, f"{type(section).__name__}.{name} must be >= 0")


class RpcServerConfig(Section):
    """``max_frame_bytes``: largest envelope + payload accepted; a larger length closes the
    connection before the body is read. ``max_in_flight_per_connection``: requests handled at
    once per connection; beyond it the server stops reading that connection (TCP backpressure)
    until a reply has been written. ``auth_timeout_s``: time a new connection has to finish the
    handshake. ``drain_timeout_s``: once a peer closes its sending side, how long its calls in
    flight may still run and have their replies sent before the connection closes.
    ``receive_buffer_bytes``: size of each connection's read buffer.
    ``buffer_cache_bytes``: memory kept, for the whole server, to reuse large payload buffers
    (see ``frame.BufferCache``; 0 disables it)."""

    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_in_flight_per_connection: int = 256
    auth_timeout_s: float = 10.0
    drain_timeout_s: float = 10.0
    receive_buffer_bytes: int = 256 << 10
    buffer_cache_bytes: int = 32 << 20

    def __post_init__(self) -> None:
        _check_non_negative(self, "buffer_cache_bytes", "drain_timeout_s")
        _check_positive(
            self, "max_frame_bytes", "max_in_flight_per_connection", "auth_timeout_s", "receive_buffer_bytes"
        )


class RpcClientConfig(Section):
    """``connect_timeout_s`` bounds connect + handshake; ``default_timeout_s`` is a call's deadline
    when the caller gives none; ``pool_size_per_address`` is the most connections kept to one
    address (a new one opens only while every open one has calls in flight).
    ``receive_buffer_bytes`` and ``buffer_cache_bytes`` as for the server (the cache is shared
    by all of the client's connections)."""

    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    connect_timeout_s: float = 5.0
    default_timeout_s: float = 30.0
    pool_size_per_address: int = 2
    receive_buffer_bytes: int = 256 << 10
    buffer_cache_bytes: int = 32 << 20

    def __post_init__(self) -> None:
        _check_non_negative(self, "buffer_cache_bytes")
        _check_positive(
            self,
            "max_frame_bytes",
            "connect_timeout_s",
            "default_timeout_s",
            "pool_size_per_address",
            "receive_buffer_bytes",
        )
