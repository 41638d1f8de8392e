"""The byte-stream interface RPC runs on, and its TCP implementation on trio sockets.

RPC needs only ``Stream`` (gathered sends, receives into a caller's buffer, close) and a
``Transport`` that connects and listens; an RDMA transport can implement the same two.
"""

from __future__ import annotations

import errno
import logging
import os
import socket as _stdsocket
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import trio

from threefs.errors import Code, ThreeFSError

__all__ = [
    "Address",
    "FileRegion",
    "Part",
    "Stream",
    "TcpStream",
    "TcpTransport",
    "Transport",
    "format_address",
    "parse_address",
]

log = logging.getLogger("threefs.rpc.transport")

Address = tuple[str, int]
Buffer = bytes | bytearray | memoryview


class FileRegion:
    """``length`` bytes of the open file ``fd`` from ``offset``, to be sent without entering user
    space (``os.sendfile``). The region owns ``fd``: it is closed by ``close()``, after the bytes
    are sent, or when the region is collected, whichever comes first. The file's bytes in the
    region must not change until then (storage sends immutable chunk versions)."""

    __slots__ = ("fd", "length", "offset")

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self.fd = fd
        self.offset = offset
        self.length = length

    def __len__(self) -> int:
        return self.length

    def read(self) -> bytes:
        """The region's bytes (for streams that cannot send a file)."""
        data = os.pread(self.fd, self.length, self.offset)
        if len(data) != self.length:
            raise ThreeFSError(Code.STORAGE_IO_ERROR, f"file region of {self.length} bytes came back short")
        return data

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        self.close()


# What a frame is sent as: buffers, and file regions (payloads only).
Part = Buffer | FileRegion

# The kernel's limit of buffers per sendmsg (IOV_MAX on Linux).
_IOV_MAX = 1024
# Sends and receives that the kernel completes at once skip trio's scheduler (a trio socket call
# that succeeds still yields, about 10 us, several per small RPC); after this many in a row the
# next one goes through trio and yields, so a busy stream cannot starve the other tasks.
_EAGER_BUDGET = 16
# Accept errors that mean "out of resources": wait and accept again instead of dying.
_ACCEPT_RETRY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


def parse_address(address: str | Address) -> Address:
    """``"host:port"``, ``"[v6]:port"`` or ``(host, port)`` -> ``(host, port)``.

    Raises ``ThreeFSError(INVALID_ARG)`` for anything else.
    """
    if isinstance(address, tuple) and len(address) == 2:
        host, port = address
    elif isinstance(address, str) and ":" in address:
        host, _, port_text = address.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        try:
            port = int(port_text)
        except ValueError:
            raise ThreeFSError(Code.INVALID_ARG, f"bad address {address!r}: port is not a number") from None
    else:
        raise ThreeFSError(Code.INVALID_ARG, f"bad address {address!r}: expected 'host:port'")
    if not isinstance(host, str) or not host or not isinstance(port, int) or not 0 < port < 65536:
        raise ThreeFSError(Code.INVALID_ARG, f"bad address {address!r}")
    return host, port


def format_address(address: Address) -> str:
    """``(host, port)`` -> ``"host:port"`` (IPv6 hosts in brackets)."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Stream(Protocol):
    """A reliable, ordered byte stream to one peer.

    At most one task sends and one task receives at a time. Errors of the underlying connection
    surface as ``ThreeFSError(RPC_CONNECTION_CLOSED)``.
    """

    peer: str

    async def send_parts(self, parts: Sequence[Part]) -> None:
        """Send every part, in order, without copying them into one buffer; file regions are
        closed once sent."""

    def send_nowait(self, parts: Sequence[Buffer]) -> int:
        """Send what the kernel takes without blocking; returns the bytes sent (0 on any error:
        the next ``send_parts`` reports it). Buffers only."""

    async def receive_into(self, buffer: memoryview) -> int:
        """Receive at least one byte into ``buffer``; 0 means the peer closed its side."""

    async def aclose(self) -> None:
        """Close the stream; a task blocked on it wakes with ``RPC_CONNECTION_CLOSED``."""


class Transport(Protocol):
    """Opens streams to addresses and accepts streams on a local address."""

    async def connect(self, address: Address) -> Stream:
        """Open a stream; raises ``ThreeFSError(RPC_CONNECT_FAILED)`` on failure."""

    async def serve(
        self,
        host: str,
        port: int,
        handler: Callable[[Stream], Awaitable[None]],
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen, report the bound port through ``task_status``, run ``handler`` per stream."""


class TcpStream:
    """``Stream`` over a connected trio TCP socket (TCP_NODELAY on). Owns and closes the socket."""

    def __init__(self, sock: trio.socket.SocketType, peer: str) -> None:
        self._sock = sock
        self.peer = peer
        self._eager_receives = _EAGER_BUDGET
        self._eager_sends = _EAGER_BUDGET
        try:
            sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
        except OSError:  # not TCP (e.g. a socketpair in tests)
            pass

    async def send_parts(self, parts: Sequence[Part]) -> None:
        # Runs of buffers go out with one gathered sendmsg each (on a partial send the rest is
        # sliced as memoryviews); a file region goes out with sendfile, kernel to kernel.
        pending: list[Buffer] = []
        try:
            for part in parts:
                if type(part) is FileRegion:
                    await self._send_buffers(pending)
                    await self._send_region(part)
                else:
                    pending.append(part)  # type: ignore[arg-type]
            await self._send_buffers(pending)
        except (OSError, trio.ClosedResourceError) as exc:
            raise ThreeFSError(Code.RPC_CONNECTION_CLOSED, f"send to {self.peer} failed: {exc}") from exc

    async def _send_buffers(self, pending: list[Buffer]) -> None:
        while pending:
            sent = -1
            fd = self._sock.fileno()
            if self._eager_sends > 0 and fd >= 0:
                await trio.lowlevel.checkpoint_if_cancelled()
                try:
                    sent = os.writev(fd, pending[:_IOV_MAX])
                    self._eager_sends -= 1
                except BlockingIOError:
                    pass
            if sent < 0:
                self._eager_sends = _EAGER_BUDGET
                sent = await self._sock.sendmsg(pending[:_IOV_MAX])
            while pending and sent >= len(pending[0]):
                sent -= len(pending.pop(0))
            if sent:
                pending[0] = memoryview(pending[0])[sent:]

    async def _send_region(self, region: FileRegion) -> None:
        offset, remaining = region.offset, region.length
        try:
            while remaining:
                await trio.lowlevel.checkpoint_if_cancelled()
                try:
                    sent = os.sendfile(self._sock.fileno(), region.fd, offset, remaining)
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(self._sock)
                    continue
                if not sent:
                    # The peer has the header announcing these bytes: the stream cannot go on.
                    raise ThreeFSError(
                        Code.RPC_CONNECTION_CLOSED, f"send to {self.peer}: file region ended early"
                    )
                offset += sent
                remaining -= sent
        finally:
            region.close()

    def send_nowait(self, parts: Sequence[Buffer]) -> int:
        fd = self._sock.fileno()
        if fd < 0:  # closed: never write to a number the kernel may have handed out again
            return 0
        try:
            return os.writev(fd, parts[:_IOV_MAX])
        except OSError:
            return 0

    async def receive_into(self, buffer: memoryview) -> int:
        try:
            fd = self._sock.fileno()
            if self._eager_receives > 0 and fd >= 0:
                await trio.lowlevel.checkpoint_if_cancelled()
                try:
                    received = os.readv(fd, [buffer])
                except BlockingIOError:
                    pass
                else:
                    self._eager_receives -= 1
                    return received
            self._eager_receives = _EAGER_BUDGET
            return await self._sock.recv_into(buffer)
        except (OSError, trio.ClosedResourceError) as exc:
            raise ThreeFSError(Code.RPC_CONNECTION_CLOSED, f"receive from {self.peer} failed: {exc}") from exc

    async def aclose(self) -> None:
        self._sock.close()
        await trio.lowlevel.checkpoint()


class TcpTransport:
    """``Transport`` over TCP; ``connect_timeout_s`` bounds name resolution plus connect."""

    def __init__(self, connect_timeout_s: float = 5.0) -> None:
        self.connect_timeout_s = connect_timeout_s

    async def connect(self, address: Address) -> Stream:
        host, port = address
        where = format_address(address)
        try:
            with trio.fail_after(self.connect_timeout_s):
                stream = await trio.open_tcp_stream(host, port)
        except trio.TooSlowError:
            raise ThreeFSError(
                Code.RPC_CONNECT_FAILED, f"connect to {where} timed out after {self.connect_timeout_s}s"
            ) from None
        except OSError as exc:
            raise ThreeFSError(Code.RPC_CONNECT_FAILED, f"connect to {where} failed: {exc}") from exc
        return TcpStream(stream.socket, where)

    async def serve(
        self,
        host: str,
        port: int,
        handler: Callable[[Stream], Awaitable[None]],
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` (port 0: any free port) until cancelled; each accepted stream
        runs ``handler`` in its own task, which must close the stream."""
        infos = await trio.socket.getaddrinfo(host, port, type=_stdsocket.SOCK_STREAM)
        family, _, _, _, sockaddr = infos[0]
        listener = trio.socket.socket(family, _stdsocket.SOCK_STREAM)
        with listener:
            listener.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEADDR, 1)
            await listener.bind(sockaddr)
            listener.listen(1024)
            async with trio.open_nursery() as nursery:
                task_status.started(listener.getsockname()[1])
                while True:
                    try:
                        sock, peer = await listener.accept()
                    except OSError as exc:
                        if exc.errno not in _ACCEPT_RETRY_ERRNOS:
                            raise
                        log.warning("accept on %s:%d failed (%s); retrying in 100 ms", host, port, exc)
                        await trio.sleep(0.1)
                        continue
                    nursery.start_soon(handler, TcpStream(sock, format_address(peer[:2])))
