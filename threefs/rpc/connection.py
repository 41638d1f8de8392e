"""One RPC connection's send queue, and the client's side of a connection.

Senders never write to the stream themselves: they append frames to a ``FrameWriter``, which
sends everything queued with one gathered send, so many small frames share a syscall and payloads
are never copied. Calls wait parked on the connection (no Event per call) and the reader task
wakes each one with its reply, in whatever order replies come.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

import msgspec
import outcome
import trio

from threefs.errors import Code, ThreeFSError
from threefs.rpc.frame import (
    FLAG_PAYLOAD_CRC_IN_BODY,
    HEADER_SIZE,
    FrameReader,
    PayloadSink,
    ScatteredPayload,
    encode_frame,
)
from threefs.rpc.transport import Buffer, FileRegion, Part, Stream
from threefs.wire.common import MethodSpec
from threefs.wire.envelope import Envelope, FrameKind

__all__ = ["ClientConnection", "FrameWriter"]

log = logging.getLogger("threefs.rpc.client")


class FrameWriter:
    """A queue of frames and the task that sends them.

    ``enqueue`` never blocks. Once ``EAGER_FLUSH_FRAMES`` frames are queued it hands them to the
    kernel at once if that does not block (so with many calls in flight the peer starts on the
    first replies while later ones are still being made, instead of both sides taking turns);
    the rest goes out from ``run``, which sends until cancelled or the stream fails (it then
    raises ``ThreeFSError(RPC_CONNECTION_CLOSED)``). ``on_sent(n)`` is told how many frames
    went out (the server frees in-flight slots with it only once a reply has been written).
    """

    # Small Echo with 64 in flight, 2 cores: 1 -> 9k calls/s, 4 -> 17k, 8 -> 20k, 16 -> 17-19k,
    # never eager (one send per scheduler pass) -> 12.5k.
    EAGER_FLUSH_FRAMES = 8

    def __init__(self, stream: Stream, on_sent: Callable[[int], None] | None = None) -> None:
        self._stream = stream
        self._on_sent = on_sent
        self._parts: list[Part] = []
        self._frames = 0
        self._regions = False  # a file region is queued: no eager (buffers-only) flush
        self._wakeup = trio.Event()
        self._sending = False  # run() is inside send_parts: nothing else may write meanwhile

    def enqueue(self, head: bytearray, payload: Buffer | list[Part] = b"", *, flush: bool = False) -> None:
        """Queue one frame (``head`` = header + envelope from ``encode_frame``; ``payload`` one
        buffer or a list of parts). ``flush``: hand what is queued to the kernel now if that does
        not block (for a lone frame: saves waking the sending task, a scheduler pass)."""
        parts = self._parts
        parts.append(head)
        if type(payload) is list:
            for part in payload:
                if type(part) is FileRegion:
                    self._regions = True
                parts.append(part)
        elif len(payload):
            parts.append(payload)  # type: ignore[arg-type]
        self._frames += 1
        if (flush or self._frames >= self.EAGER_FLUSH_FRAMES) and not self._sending and not self._regions:
            self._flush_nowait()
        if self._parts:
            self._wakeup.set()

    def flush_nowait(self) -> None:
        """Hand what is queued to the kernel now, as far as it takes it without blocking; the
        rest goes out from ``run``."""
        if self._parts and not self._sending and not self._regions:
            self._flush_nowait()

    def _flush_nowait(self) -> None:
        parts = self._parts
        sent = self._stream.send_nowait(parts)  # type: ignore[arg-type]  (no regions queued)
        if not sent:
            return
        if sent == sum(map(len, parts)):
            frames = self._frames
            self._parts, self._frames = [], 0
            if self._on_sent is not None:
                self._on_sent(frames)
            return
        # A partial send: drop what went out; the frames are counted when run() sends the rest.
        while sent >= len(parts[0]):
            sent -= len(parts.pop(0))
        if sent:
            parts[0] = memoryview(parts[0])[sent:]

    async def run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            parts, frames = self._parts, self._frames
            if not parts:
                continue
            self._parts, self._frames, self._regions = [], 0, False
            self._sending = True
            await self._stream.send_parts(parts)
            self._sending = False
            if self._on_sent is not None:
                self._on_sent(frames)


_EXPIRED = object()  # what the deadline timer wakes a call with


class _Call:
    """A call waiting for its reply. ``receiving``: its reply's payload is being received into
    the caller's buffers (through ``sink``) right now, so it may neither expire nor be cancelled
    until that ends (the caller would get its buffer back while bytes still land in it)."""

    __slots__ = ("deadline", "receiving", "sink", "spec", "task")

    def __init__(
        self, task: trio.lowlevel.Task, deadline: float, spec: MethodSpec, sink: PayloadSink | None
    ) -> None:
        self.task = task
        self.deadline = deadline
        self.spec = spec
        self.sink = sink
        self.receiving = False


class ClientConnection:
    """An authenticated connection on which many calls are in flight at once.

    ``run`` must be started in a nursery; it reads replies until the stream ends or ``close`` is
    called, then fails every call still waiting with RPC_CONNECTION_CLOSED and closes the stream.
    Call deadlines are kept by one timer task per connection rather than a cancel scope per
    call (a trio cancel scope costs about 8 us, a sizeable part of a small call).
    """

    # Calls in flight (this one included) up to which a call is sent at once rather than queued.
    EAGER_SEND_IN_FLIGHT = 2

    def __init__(self, stream: Stream, reader: FrameReader, max_frame_bytes: int) -> None:
        self.peer = stream.peer
        self._stream = stream
        self._reader = reader
        self._writer = FrameWriter(stream)
        self._max_frame_bytes = max_frame_bytes
        self._pending: dict[int, _Call] = {}
        self._next_request_id = 1
        self._cancel_scope = trio.CancelScope()
        self._timer_scope = trio.CancelScope()  # its deadline is the earliest pending deadline
        self._reason: str | None = None
        self.alive = True

    @property
    def in_flight(self) -> int:
        """Calls sent and not yet answered."""
        return len(self._pending)

    def close(self) -> None:
        """Stop the connection; waiting calls fail with RPC_CONNECTION_CLOSED."""
        self.alive = False
        self._cancel_scope.cancel()

    async def run(self) -> None:
        with self._cancel_scope:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._guard, self._writer.run, nursery.cancel_scope)
                    nursery.start_soon(self._expire_calls)
                    await self._guard(self._read_replies, nursery.cancel_scope)
            finally:
                self.alive = False
        reason = self._reason or "closed by this side"
        error = ThreeFSError(Code.RPC_CONNECTION_CLOSED, f"connection to {self.peer} lost: {reason}")
        pending, self._pending = self._pending, {}
        for call in pending.values():
            trio.lowlevel.reschedule(call.task, outcome.Error(error))
        with trio.CancelScope(shield=True):
            await self._stream.aclose()

    async def _guard(self, step: Callable[[], Awaitable[None]], scope: trio.CancelScope) -> None:
        try:
            await step()
        except ThreeFSError as exc:
            if self._reason is None:
                self._reason = exc.message
                if exc.code != Code.RPC_CONNECTION_CLOSED:
                    log.warning("closing connection to %s: %s", self.peer, exc)
        finally:
            scope.cancel()

    def _sink(self, envelope: Envelope, payload_len: int) -> list[memoryview] | None:
        """Where the payload of a reply goes: the views of its call's sink, if it has one."""
        call = self._pending.get(envelope.request_id)
        if call is None or call.sink is None or envelope.kind != FrameKind.RESPONSE:
            return None
        views = call.sink(envelope, payload_len)
        if views is not None:
            call.receiving = True
        return views

    async def _read_replies(self) -> None:
        pending = self._pending
        reader = self._reader
        sink = self._sink
        while True:
            frame = await reader.read_frame(sink)
            if frame is None:
                raise ThreeFSError(Code.RPC_CONNECTION_CLOSED, "the server closed the connection")
            call = pending.pop(frame[0].request_id, None)
            if call is None:
                log.debug("reply %d from %s came after its call gave up", frame[0].request_id, self.peer)
                continue
            if reader.last_flags & FLAG_PAYLOAD_CRC_IN_BODY and not call.spec.payload_crc_in_body:
                error = ThreeFSError(
                    Code.RPC_BAD_FRAME, f"{call.spec.name} reply from {self.peer} left its payload unchecked"
                )
                trio.lowlevel.reschedule(call.task, outcome.Error(error))
                continue
            trio.lowlevel.reschedule(call.task, outcome.Value(frame))

    async def _expire_calls(self) -> None:
        """Wake calls whose deadline passed. Sleeps until the earliest deadline; ``call`` moves
        that alarm earlier when it adds an earlier one. No checkpoint lies between the scan and
        arming the next alarm, so no call can slip in unseen."""
        pending = self._pending
        while True:
            with self._timer_scope:
                await trio.sleep_forever()
            now = trio.current_time()
            earliest = math.inf
            for request_id, call in list(pending.items()):
                if call.deadline <= now:
                    if call.receiving:
                        # Its bytes are landing in the caller's buffer: the only way to stop
                        # them is to drop the connection (the call then fails as closed).
                        self._reason = f"the reply to request {request_id} arrived too slowly"
                        self.close()
                        continue
                    del pending[request_id]
                    trio.lowlevel.reschedule(call.task, outcome.Value(_EXPIRED))
                elif call.deadline < earliest:
                    earliest = call.deadline
            self._timer_scope = trio.CancelScope(deadline=earliest)

    async def call(
        self,
        spec: MethodSpec,
        request: msgspec.Struct,
        payload: Buffer,
        timeout_s: float,
        sink: PayloadSink | None = None,
    ) -> tuple[msgspec.Struct, bytes | bytearray | ScatteredPayload]:
        """Send one request and wait for its reply; see ``RpcClient.call`` for the contract."""
        if not self.alive:
            raise ThreeFSError(Code.RPC_CONNECTION_CLOSED, f"connection to {self.peer} is closed")
        request_id = self._next_request_id
        self._next_request_id = request_id + 1
        timeout_ms = math.ceil(timeout_s * 1000) if timeout_s > 0 else 1
        envelope = Envelope(
            FrameKind.REQUEST, request_id, spec.service_id, spec.method_id, timeout_ms, request
        )
        head = encode_frame(envelope, payload, payload_crc_in_body=spec.payload_crc_in_body)
        if len(head) - HEADER_SIZE + len(payload) > self._max_frame_bytes:
            raise ThreeFSError(
                Code.RPC_FRAME_TOO_LARGE,
                f"{spec.name} request exceeds the frame limit of {self._max_frame_bytes}",
            )
        pending = self._pending

        def abort(_: object) -> trio.lowlevel.Abort:
            waiting = pending.get(request_id)
            if waiting is not None and waiting.receiving:
                return trio.lowlevel.Abort.FAILED  # cancelled once its bytes are in (or it fails)
            pending.pop(request_id, None)
            return trio.lowlevel.Abort.SUCCEEDED

        deadline = trio.current_time() + timeout_s
        pending[request_id] = _Call(trio.lowlevel.current_task(), deadline, spec, sink)
        if deadline < self._timer_scope.deadline:
            self._timer_scope.deadline = deadline
        # A call alone on its connection goes out at once; with more in flight, frames queue up
        # and share a send (see FrameWriter.EAGER_FLUSH_FRAMES).
        self._writer.enqueue(head, payload, flush=len(pending) <= self.EAGER_SEND_IN_FLIGHT)
        reply = await trio.lowlevel.wait_task_rescheduled(abort)
        if reply is _EXPIRED:
            raise ThreeFSError(
                Code.RPC_DEADLINE_EXCEEDED, f"{spec.name} to {self.peer}: no reply within {timeout_s:g} s"
            )
        return _unpack_reply(spec, self.peer, reply[0]), reply[1]


def _unpack_reply(spec: MethodSpec, peer: str, reply: Envelope) -> msgspec.Struct:
    if reply.kind == FrameKind.RESPONSE:
        try:
            return spec.response_decoder.decode(reply.body)
        except msgspec.DecodeError as exc:
            raise ThreeFSError(
                Code.RPC_INVALID_BODY, f"{spec.name} reply from {peer} is invalid: {exc}"
            ) from None
    if reply.kind == FrameKind.ERROR:
        raise ThreeFSError(reply.error_code, reply.error_message)
    raise ThreeFSError(Code.RPC_BAD_FRAME, f"{spec.name} reply from {peer} has frame kind {reply.kind}")
