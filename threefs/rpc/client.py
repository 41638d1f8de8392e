"""The RPC client: a pool of authenticated connections per address, and typed stubs.

Connections to one address are opened lazily, up to ``pool_size_per_address``; a call uses the
open connection with the fewest calls in flight, and a new one is opened only while every open
one is busy. A connection that fails leaves the pool; the next call reconnects.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, TypeVar

import msgspec
import trio

from threefs.errors import Code, ThreeFSError
from threefs.rpc.auth import client_handshake, normalize_credential
from threefs.rpc.config import RpcClientConfig
from threefs.rpc.connection import ClientConnection
from threefs.rpc.frame import BufferCache, FrameReader, PayloadSink
from threefs.rpc.transport import Address, Buffer, TcpTransport, Transport, format_address, parse_address
from threefs.rpc.users import UserToken
from threefs.wire.common import MethodSpec

__all__ = ["RpcClient", "ServiceStub"]

log = logging.getLogger("threefs.rpc.client")

R = TypeVar("R", bound=msgspec.Struct)


class _Pool:
    """The connections to one address."""

    __slots__ = ("connections", "lock")

    def __init__(self) -> None:
        self.connections: list[ClientConnection] = []
        self.lock = trio.Lock()  # one connect at a time per address

    def pick(self, size: int) -> ClientConnection | None:
        """The least busy live connection, unless all are busy and there is room for another."""
        best = None
        live = 0
        for connection in self.connections:
            if connection.alive:
                live += 1
                if best is None or connection.in_flight < best.in_flight:
                    best = connection
        if live != len(self.connections):
            self.connections = [c for c in self.connections if c.alive]
        if best is None or (best.in_flight and live < size):
            return None
        return best


class RpcClient:
    """Calls methods on RPC servers. ``credential``: the cluster secret (str or bytes: a cluster
    member) or a ``UserToken`` (a user: servers check each request against the user's rights).
    Use as ``async with RpcClient(...)``; leaving the block closes every connection (calls still
    waiting fail with RPC_CONNECTION_CLOSED)."""

    def __init__(
        self,
        credential: str | bytes | UserToken,
        config: RpcClientConfig | None = None,
        transport: Transport | None = None,
    ) -> None:
        self._credential = normalize_credential(credential)
        self.config = config or RpcClientConfig()
        self._transport = transport or TcpTransport(self.config.connect_timeout_s)
        self._pools: dict[Address, _Pool] = {}
        self._buffer_cache = BufferCache(self.config.buffer_cache_bytes)
        self._nursery: trio.Nursery | None = None
        self._nursery_manager: Any = None

    async def __aenter__(self) -> RpcClient:
        self._nursery_manager = trio.open_nursery()
        self._nursery = await self._nursery_manager.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        nursery, self._nursery = self._nursery, None
        if nursery is not None:
            nursery.cancel_scope.cancel()
        try:
            return await self._nursery_manager.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # trio wraps an error raised in the block in a group (strict exception groups); the
            # caller wrote ``async with client`` around a call, not a nursery: give it back as is.
            if exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is exc:
                return False
            raise

    def connection_count(self, address: str | Address) -> int:
        """How many live connections the pool holds to ``address``."""
        pool = self._pools.get(parse_address(address))
        return 0 if pool is None else sum(1 for c in pool.connections if c.alive)

    async def call(
        self,
        address: str | Address,
        spec: MethodSpec,
        request: msgspec.Struct,
        *,
        payload: Buffer = b"",
        timeout_s: float | None = None,
        sink: PayloadSink | None = None,
    ) -> tuple[Any, Any]:
        """Call ``spec`` at ``address``; returns ``(response, reply_payload)``.

        ``sink`` (methods with ``payload_crc_in_body`` only) may name the caller's buffers for
        the reply payload (see ``threefs.rpc.frame.PayloadSink``); the payload is then a
        ``ScatteredPayload`` with each view's CRC32C. While bytes land in those buffers the
        call can be neither cancelled nor timed out: a reply that stalls past the deadline
        closes the connection instead (RPC_CONNECTION_CLOSED).

        ``timeout_s`` (default ``config.default_timeout_s``) is the call's deadline: the server
        is told the time remaining and cancels the handler when it passes. (An enclosing cancel
        scope still cancels the call as usual, but the server does not learn of it.) Raises
        ``ThreeFSError``: the handler's own code; RPC_DEADLINE_EXCEEDED; RPC_CONNECT_FAILED
        (retryable) or RPC_AUTH_FAILED when no connection can be made; RPC_CONNECTION_CLOSED
        when the connection dies first (the server may or may not have run the request).
        The payload is sent as is and must not change until the call returns.
        """
        if type(request) is not spec.request_type:
            raise ThreeFSError(
                Code.INVALID_ARG,
                f"{spec.name} takes {spec.request_type.__name__}, not {type(request).__name__}",
            )
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise ThreeFSError(Code.INVALID_ARG, f"payload must be bytes-like, not {type(payload).__name__}")
        if type(payload) is memoryview and payload.format != "B":
            payload = payload.cast("B")
        if timeout_s is None:
            timeout_s = self.config.default_timeout_s
        key = address if type(address) is tuple else parse_address(address)
        pool = self._pools.get(key)  # type: ignore[arg-type]
        connection = pool.pick(self.config.pool_size_per_address) if pool is not None else None
        if connection is None:
            key = parse_address(key)  # type: ignore[arg-type]
            started = trio.current_time()
            with trio.move_on_after(timeout_s):
                connection = await self._connection(key)  # type: ignore[arg-type]
            timeout_s -= trio.current_time() - started
            if connection is None or timeout_s <= 0:
                raise ThreeFSError(
                    Code.RPC_DEADLINE_EXCEEDED, f"{spec.name}: no connection to {format_address(key)} in time"
                )
        return await connection.call(spec, request, payload, timeout_s, sink)

    async def _connection(self, address: Address) -> ClientConnection:
        pool = self._pools.setdefault(address, _Pool())
        async with pool.lock:
            connection = pool.pick(self.config.pool_size_per_address)
            if connection is None:
                connection = await self._connect(address)
                pool.connections.append(connection)
        return connection

    async def _connect(self, address: Address) -> ClientConnection:
        if self._nursery is None:
            raise ThreeFSError(Code.CLIENT_CLOSED, "RpcClient is not open (use 'async with RpcClient(...)')")
        config = self.config
        where = format_address(address)
        stream = await self._transport.connect(address)
        try:
            reader = FrameReader(
                stream, config.max_frame_bytes, config.receive_buffer_bytes, self._buffer_cache
            )
            with trio.fail_after(config.connect_timeout_s):
                await client_handshake(stream, reader, self._credential)
        except trio.TooSlowError:
            await _close(stream)
            raise ThreeFSError(
                Code.RPC_CONNECT_FAILED, f"{where}: no auth handshake within the connect timeout"
            ) from None
        except ThreeFSError as exc:
            await _close(stream)
            if exc.code == Code.RPC_AUTH_FAILED:
                log.warning("authentication with %s failed: %s", where, exc.message)
                raise
            raise ThreeFSError(Code.RPC_CONNECT_FAILED, f"{where}: handshake failed: {exc}") from exc
        except BaseException:
            await _close(stream)
            raise
        connection = ClientConnection(stream, reader, config.max_frame_bytes)
        self._nursery.start_soon(connection.run)
        log.debug("connected to %s", where)
        return connection


async def _close(stream: Any) -> None:
    with trio.CancelScope(shield=True):
        await stream.aclose()


class ServiceStub:
    """Base of typed stubs: binds a client and an address. Subclasses add one method per RPC,
    e.g. ``async def echo(self, request, *, payload=b"", timeout_s=None)`` calling ``_call``."""

    def __init__(self, client: RpcClient, address: str | Address) -> None:
        self.client = client
        self.address = parse_address(address)

    async def _call(
        self, spec: MethodSpec, request: msgspec.Struct, payload: Buffer, timeout_s: float | None
    ) -> tuple[Any, bytes | bytearray]:
        return await self.client.call(self.address, spec, request, payload=payload, timeout_s=timeout_s)
