"""The RPC server: authenticates each connection, then runs each request in its own task.

Backpressure, not refusal: a connection has ``max_in_flight_per_connection`` slots; a slot is
taken before a frame is read and freed once that frame's reply has been written, so a client
that floods requests (or never reads replies) just stops being read and TCP flow control pushes
back on it. A bad frame that leaves the stream in sync (unknown service or method, invalid body)
gets an error reply; one that does not (bad magic, CRC, version, length) closes the connection.
Either way it is logged once and the server keeps serving everyone else.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any, ClassVar

import msgspec
import trio

from threefs.errors import Code, ThreeFSError
from threefs.rpc.auth import AuthResult, normalize_secret, server_handshake
from threefs.rpc.config import RpcServerConfig
from threefs.rpc.connection import FrameWriter
from threefs.rpc.frame import (
    AUTH_MAX_FRAME_BYTES,
    FLAG_PAYLOAD_CRC_IN_BODY,
    HEADER_SIZE,
    BufferCache,
    FrameReader,
    encode_frame,
    payload_size,
)
from threefs.rpc.transport import FileRegion, Stream, TcpTransport, Transport
from threefs.rpc.users import Identity, UserDirectory
from threefs.wire.common import MethodSpec, ServiceSpec
from threefs.wire.envelope import Envelope, FrameKind

__all__ = ["CallContext", "RpcServer", "RpcService", "rpc_method"]

log = logging.getLogger("threefs.rpc.server")

_MAX_ERROR_MESSAGE = 4096  # characters; a longer message is cut (the server log has it all)
# Requests in flight on a connection (the one being answered included) up to which a reply is
# handed to the kernel at once rather than queued for the sending task.
_EAGER_REPLY_IN_FLIGHT = 2

Handler = Callable[..., Awaitable[Any]]
# ``handler(ctx, request, payload) -> response``: runs in place, see ``RpcService.inline_handlers``.
InlineHandler = Callable[["CallContext", Any, Any], Any]


class CallContext:
    """What a handler knows about its call: the peer, the request id, the deadline (trio clock,
    ``inf`` for none) and how the connection authenticated: ``auth_kind`` and ``identity``
    (None on a cluster-secret connection, the user's ``Identity`` on a user-token one)."""

    __slots__ = ("auth_kind", "deadline", "identity", "peer", "request_id")

    def __init__(
        self, peer: str, request_id: int, deadline: float, auth_kind: str, identity: Identity | None = None
    ) -> None:
        self.peer = peer
        self.request_id = request_id
        self.deadline = deadline
        self.auth_kind = auth_kind
        self.identity = identity

    def remaining(self) -> float:
        """Seconds left before the caller gives up (``inf`` without a deadline)."""
        return self.deadline - trio.current_time()


def rpc_method(spec: MethodSpec) -> Callable[[Handler], Handler]:
    """Mark ``async def handler(self, ctx, request, payload)`` as the implementation of ``spec``.

    The handler returns the response struct, or ``(response, payload)`` to send bulk bytes
    back; a method whose spec has ``payload_crc_in_body`` may give the payload as a list of
    parts (buffers and ``FileRegion``s, sent with sendfile). It raises ``ThreeFSError`` to
    answer an error. It is cancelled when the deadline passes.
    """

    def mark(handler: Handler) -> Handler:
        handler.__rpc_method__ = spec  # type: ignore[attr-defined]
        return handler

    return mark


class RpcService:
    """Base of a service implementation: set ``spec`` and decorate handlers with ``rpc_method``.
    Methods of the spec without a handler answer NOT_IMPLEMENTED."""

    spec: ClassVar[ServiceSpec]

    def inline_handlers(self) -> dict[MethodSpec, InlineHandler]:
        """Synchronous handlers the connection runs in place, instead of the method's
        ``rpc_method`` handler in a task of its own (asked once, when a server is built).

        For requests answered from memory or a local store in tens of microseconds: a task of
        its own, a cancel scope and a wake-up of the sending task cost more than that. An
        inline handler must not block (nothing else on the server runs meanwhile), returns the
        response struct (no payload) or raises ``ThreeFSError``, and is not cancelled by the
        deadline. The default: none."""
        return {}

    def authorize_user(self, identity: Identity, spec: MethodSpec, request: Any) -> None:
        """Whether a request that came on a user-token connection may run: return to let it
        run, raise ``ThreeFSError`` to refuse it (the error is the reply; the handler never
        runs, so a refused request changes nothing). Called, before the handler, for every
        request of a user connection and never for cluster-secret ones. The default refuses
        everything: a service serves users only where it says so."""
        raise ThreeFSError(
            Code.PERMISSION_DENIED, f"{spec.name} is not open to user tokens (user {identity.name!r})"
        )


class _Method:
    __slots__ = ("authorize", "handler", "inline", "spec")

    def __init__(
        self,
        spec: MethodSpec,
        handler: Handler,
        inline: InlineHandler | None = None,
        authorize: Callable[[Identity, MethodSpec, Any], None] | None = None,
    ) -> None:
        self.spec = spec
        self.handler = handler
        self.inline = inline
        self.authorize = authorize


def _method_table(services: Iterable[RpcService]) -> tuple[dict[int, _Method], set[int]]:
    """``(service_id << 32 | method_id) -> _Method`` and the set of service ids served."""
    table: dict[int, _Method] = {}
    service_ids: set[int] = set()
    for service in services:
        spec = getattr(type(service), "spec", None)
        if not isinstance(spec, ServiceSpec):
            raise TypeError(f"{type(service).__name__} has no ServiceSpec 'spec'")
        if spec.service_id in service_ids:
            raise ValueError(f"service id {spec.service_id} registered twice")
        service_ids.add(spec.service_id)
        for method in spec.methods:
            table[spec.service_id << 32 | method.method_id] = _Method(
                method, partial(_not_implemented, method)
            )
        for name in dir(type(service)):
            method = getattr(getattr(type(service), name), "__rpc_method__", None)
            if method is None:
                continue
            if method not in spec.methods:
                raise ValueError(
                    f"{type(service).__name__}.{name} implements {method.name}, not in {spec.name}"
                )
            table[spec.service_id << 32 | method.method_id] = _Method(method, getattr(service, name))
        for method, inline in service.inline_handlers().items():
            if method not in spec.methods:
                raise ValueError(f"{type(service).__name__} has an inline {method.name}, not in {spec.name}")
            table[spec.service_id << 32 | method.method_id].inline = inline
        for method in spec.methods:
            table[spec.service_id << 32 | method.method_id].authorize = service.authorize_user
    return table, service_ids


async def _not_implemented(spec: MethodSpec, *_: object) -> Any:
    raise ThreeFSError(Code.NOT_IMPLEMENTED, f"{spec.name} is not implemented by this server")


class RpcServer:
    """Serves ``services`` to peers that prove ``secret``, and, with ``users``, to clients that
    prove a user token found there (each request then passes ``RpcService.authorize_user``).

    ``await nursery.start(server.serve, host, port)`` returns the bound port once listening
    (port 0: a free port); cancelling the task stops the server and drops its connections.
    """

    def __init__(
        self,
        secret: str | bytes,
        services: Iterable[RpcService],
        config: RpcServerConfig | None = None,
        transport: Transport | None = None,
        *,
        users: UserDirectory | None = None,
    ) -> None:
        self._secret = normalize_secret(secret)
        self.users = users
        self.config = config or RpcServerConfig()
        self._transport = transport or TcpTransport()
        self._methods, self._service_ids = _method_table(services)
        self._buffer_cache = BufferCache(self.config.buffer_cache_bytes)

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on ``host:port`` until cancelled; reports the bound port through ``task_status``."""
        await self._transport.serve(host, port, self.handle_stream, task_status=task_status)

    async def handle_stream(self, stream: Stream) -> None:
        """Authenticate and serve one accepted stream until it ends; always closes it."""
        config = self.config
        reader = FrameReader(stream, config.max_frame_bytes, config.receive_buffer_bytes, self._buffer_cache)
        try:
            try:
                reader.max_frame_bytes = AUTH_MAX_FRAME_BYTES
                with trio.fail_after(config.auth_timeout_s):
                    auth = await server_handshake(stream, reader, self._secret, self.users)
                reader.max_frame_bytes = config.max_frame_bytes
            except trio.TooSlowError:
                log.warning("refused %s: no authentication within %g s", stream.peer, config.auth_timeout_s)
                return
            except ThreeFSError as exc:
                if exc.code == Code.RPC_CONNECTION_CLOSED:
                    log.info("%s closed the connection before authenticating", stream.peer)
                else:
                    log.warning("refused %s: %s", stream.peer, exc)
                return
            await _ServerConnection(self, stream, reader, auth).serve()
        except Exception:
            # A bug in this module: lose this connection, never the server.
            log.exception("connection from %s failed unexpectedly", stream.peer)
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()


class _ServerConnection:
    """The server's side of one authenticated connection."""

    def __init__(self, server: RpcServer, stream: Stream, reader: FrameReader, auth: AuthResult) -> None:
        self.peer = stream.peer
        self._server = server
        self._reader = reader
        self._auth_kind = auth.kind
        self._identity = auth.identity  # None: a cluster-secret connection (no per-request check)
        self._user_key = auth.key
        self._max_frame_bytes = server.config.max_frame_bytes
        self._max_in_flight = server.config.max_in_flight_per_connection
        self._slots = trio.Semaphore(self._max_in_flight)
        self._writer = FrameWriter(stream, on_sent=self._free_slots)
        self._drained = trio.Event()  # set once every reply is written after the peer's EOF
        self._draining = False

    def _free_slots(self, count: int) -> None:
        for _ in range(count):
            self._slots.release()
        if self._draining and self._slots.value == self._max_in_flight:
            self._drained.set()

    async def _drain(self) -> None:
        """The peer closed its side: let the calls in flight finish and their replies go out
        (within ``drain_timeout_s``), then the connection closes."""
        self._draining = True
        self._free_slots(1)  # the slot taken for the frame that turned out to be EOF
        with trio.move_on_after(self._server.config.drain_timeout_s):
            await self._drained.wait()

    async def serve(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._guard, self._writer.run, nursery.cancel_scope)
            await self._guard(partial(self._read_requests, nursery), nursery.cancel_scope)

    async def _guard(self, step: Callable[[], Awaitable[None]], scope: trio.CancelScope) -> None:
        try:
            await step()
        except ThreeFSError as exc:
            if exc.code == Code.RPC_CONNECTION_CLOSED:
                log.debug("connection from %s ended: %s", self.peer, exc.message)
            else:
                log.warning("closing connection from %s: %s", self.peer, exc)
        finally:
            scope.cancel()

    def _reply_error(self, envelope: Envelope, code: Code, message: str) -> None:
        reply = Envelope(
            FrameKind.ERROR,
            envelope.request_id,
            envelope.service_id,
            envelope.method_id,
            error_code=int(code),
            error_message=message[:_MAX_ERROR_MESSAGE],
        )
        self._writer.enqueue(encode_frame(reply), flush=self._lone())

    def _lone(self) -> bool:
        """Whether few enough requests are in flight on this connection that a reply should go
        out at once (a lone caller waits for it) rather than share a later send."""
        return self._max_in_flight - self._slots.value <= _EAGER_REPLY_IN_FLIGHT

    async def _read_requests(self, nursery: trio.Nursery) -> None:
        methods = self._server._methods
        slots = self._slots
        while True:
            try:
                slots.acquire_nowait()
            except trio.WouldBlock:
                await slots.acquire()
            frame = await self._reader.read_frame()
            if frame is None:
                await self._drain()
                return
            envelope, payload = frame
            method = methods.get(envelope.service_id << 32 | envelope.method_id)
            if method is None or envelope.kind != FrameKind.REQUEST:
                code, message = self._misrouted(envelope)
                log.warning("bad request from %s: %s", self.peer, message, extra=_request_fields(envelope))
                self._reply_error(envelope, code, message)
                continue
            try:
                request = method.spec.request_decoder.decode(envelope.body)
            except msgspec.DecodeError as exc:
                message = f"{method.spec.name} request does not validate: {exc}"
                log.warning("bad request from %s: %s", self.peer, message, extra=_request_fields(envelope))
                self._reply_error(envelope, Code.RPC_INVALID_BODY, message)
                continue
            if self._reader.last_flags & FLAG_PAYLOAD_CRC_IN_BODY and not method.spec.payload_crc_in_body:
                message = f"{method.spec.name} requests must checksum their payload in the frame"
                log.warning("bad request from %s: %s", self.peer, message, extra=_request_fields(envelope))
                self._reply_error(envelope, Code.RPC_BAD_FRAME, message)
                continue
            if self._identity is not None and not self._user_may(self._identity, method, envelope, request):
                continue
            if method.inline is not None:
                self._handle_inline(method, envelope, request, payload)
            else:
                nursery.start_soon(self._handle, method, envelope, request, payload)

    def _user_may(self, identity: Identity, method: _Method, envelope: Envelope, request: Any) -> bool:
        """Whether a user connection's request may run: the user still has the key it proved
        (not removed, no new token since) and the service authorizes it. Else the request is
        answered with the refusal and never runs."""
        users = self._server.users
        entry = users.get(identity.name) if users is not None else None
        try:
            if entry is None or entry.key != self._user_key:
                raise ThreeFSError(
                    Code.RPC_AUTH_FAILED,
                    f"user {identity.name!r} was removed or given a new token since this connection "
                    "authenticated",
                )
            identity = entry.identity  # the latest uid/gid/flags for the same key
            if method.authorize is not None:
                method.authorize(identity, method.spec, request)
        except ThreeFSError as exc:
            # at INFO: who was refused what is worth keeping, unlike a handler's error answers
            log.info(
                "refused %s from %s (user %r): %s",
                method.spec.name,
                self.peer,
                identity.name,
                exc,
                extra={**_request_fields(envelope), "code": exc.code.name},
            )
            self._reply_error(envelope, exc.code, exc.message)
            return False
        self._identity = identity
        return True

    def _misrouted(self, envelope: Envelope) -> tuple[Code, str]:
        if envelope.kind != FrameKind.REQUEST:
            return (
                Code.RPC_BAD_FRAME,
                f"unexpected frame kind {envelope.kind} (request {envelope.request_id})",
            )
        if envelope.service_id not in self._server._service_ids:
            return Code.RPC_UNKNOWN_SERVICE, f"no service with id {envelope.service_id}"
        return Code.RPC_UNKNOWN_METHOD, f"service {envelope.service_id} has no method {envelope.method_id}"

    def _deadline(self, envelope: Envelope) -> float:
        timeout_ms = envelope.timeout_ms
        return trio.current_time() + timeout_ms / 1000 if timeout_ms else math.inf

    def _handle_inline(self, method: _Method, envelope: Envelope, request: Any, payload: Any) -> None:
        context = CallContext(
            self.peer, envelope.request_id, self._deadline(envelope), self._auth_kind, self._identity
        )
        try:
            result = method.inline(context, request, payload)  # type: ignore[misc]
        except ThreeFSError as exc:
            self._log_error_reply(method.spec, envelope, exc.code, exc.message)
            self._reply_error(envelope, exc.code, exc.message)
            return
        except Exception as exc:
            self._unexpected(method.spec, envelope, exc)
            return
        self._reply(method.spec, envelope, result)

    async def _handle(self, method: _Method, envelope: Envelope, request: Any, payload: Any) -> None:
        spec = method.spec
        deadline = self._deadline(envelope)
        context = CallContext(self.peer, envelope.request_id, deadline, self._auth_kind, self._identity)
        try:
            with trio.CancelScope(deadline=deadline) as scope:
                result = await method.handler(context, request, payload)
        except ThreeFSError as exc:
            self._log_error_reply(spec, envelope, exc.code, exc.message)
            self._reply_error(envelope, exc.code, exc.message)
            return
        except Exception as exc:
            self._unexpected(spec, envelope, exc)
            return
        if scope.cancelled_caught:
            message = f"{spec.name} cancelled: its {envelope.timeout_ms} ms deadline passed"
            self._log_error_reply(spec, envelope, Code.RPC_DEADLINE_EXCEEDED, message)
            self._reply_error(envelope, Code.RPC_DEADLINE_EXCEEDED, message)
            return
        self._reply(spec, envelope, result)

    def _log_error_reply(self, spec: MethodSpec, envelope: Envelope, code: Code, message: str) -> None:
        """A handler's error answer, at DEBUG: with the request id, a client's retries of one
        call can be followed in the server's log."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s from %s answered %s: %s",
                spec.name,
                self.peer,
                code.name,
                message,
                extra={**_request_fields(envelope), "code": code.name},
            )

    def _unexpected(self, spec: MethodSpec, envelope: Envelope, exc: Exception) -> None:
        log.exception(
            "%s from %s failed unexpectedly",
            spec.name,
            self.peer,
            exc_info=exc,
            extra=_request_fields(envelope),
        )
        self._reply_error(envelope, Code.INTERNAL, f"{spec.name} failed: {type(exc).__name__}: {exc}")

    def _reply(self, spec: MethodSpec, envelope: Envelope, result: Any) -> None:
        """Send a handler's result: ``response`` or ``(response, payload)``."""
        try:
            response, reply_payload = result if type(result) is tuple else (result, b"")
            if type(reply_payload) is list and spec.payload_crc_in_body:
                reply_payload = [_byte_part(part) for part in reply_payload]
            elif not isinstance(reply_payload, bytes | bytearray | memoryview):
                raise TypeError(f"handler returned a {type(reply_payload).__name__} payload, not bytes")
            elif type(reply_payload) is memoryview and reply_payload.format != "B":
                reply_payload = reply_payload.cast("B")  # lengths on the wire count bytes
            if type(response) is not spec.response_type:
                raise TypeError(
                    f"handler returned {type(response).__name__}, not {spec.response_type.__name__}"
                )
            reply = Envelope(
                FrameKind.RESPONSE, envelope.request_id, spec.service_id, spec.method_id, 0, response
            )
            head = encode_frame(reply, reply_payload, payload_crc_in_body=spec.payload_crc_in_body)
        except Exception as exc:
            self._unexpected(spec, envelope, exc)
            return
        if len(head) - HEADER_SIZE + payload_size(reply_payload) > self._max_frame_bytes:
            message = f"{spec.name} reply exceeds the frame limit of {self._max_frame_bytes}"
            log.error("%s (to %s)", message, self.peer, extra=_request_fields(envelope))
            self._reply_error(envelope, Code.RPC_FRAME_TOO_LARGE, message)
            return
        self._writer.enqueue(head, reply_payload, flush=self._lone())


def _request_fields(envelope: Envelope) -> dict[str, int]:
    """The ``extra`` fields that tie a log line to one request (``threefs.service.logs`` writes
    them as ``request_id=...``)."""
    return {"request_id": envelope.request_id}


def _byte_part(part: object) -> object:
    """A payload part as sent: file regions and byte buffers as they are."""
    if type(part) is FileRegion or type(part) is bytes or type(part) is bytearray:
        return part
    if type(part) is memoryview:
        return part if part.format == "B" else part.cast("B")
    raise TypeError(f"handler returned a payload part of type {type(part).__name__}")
