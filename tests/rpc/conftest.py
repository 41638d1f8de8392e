"""Fixtures for RPC tests: a live Debug server on loopback, a client, and a raw peer that speaks
bytes (to send what a well-behaved client never would)."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import pytest
import trio

from threefs.errors import Code, ThreeFSError
from threefs.rpc import RpcClient, RpcClientConfig, RpcServer, RpcServerConfig
from threefs.rpc.auth import client_handshake
from threefs.rpc.debug import DebugService
from threefs.rpc.frame import FrameReader
from threefs.rpc.transport import Address, TcpStream
from threefs.wire.envelope import Envelope

SECRET = "test-cluster-secret"


class RunningServer:
    """A Debug server started by ``start_server``; ``stop()`` returns once it no longer listens."""

    def __init__(self, address: Address, service: DebugService, scope: trio.CancelScope) -> None:
        self.address = address
        self.service = service
        self._scope = scope
        self.stopped = trio.Event()

    async def stop(self) -> None:
        self._scope.cancel()
        await self.stopped.wait()


async def start_server(
    nursery: trio.Nursery, *, port: int = 0, config: RpcServerConfig | None = None, secret: str = SECRET
) -> RunningServer:
    service = DebugService()
    server = RpcServer(secret, [service], config)
    scope = trio.CancelScope()
    handle: list[RunningServer] = []

    async def run(task_status: trio.TaskStatus[int]) -> None:
        try:
            with scope:
                await server.serve("127.0.0.1", port, task_status=task_status)
        finally:
            if handle:
                handle[0].stopped.set()

    bound = await nursery.start(run)
    handle.append(RunningServer(("127.0.0.1", bound), service, scope))
    return handle[0]


class RawPeer:
    """A TCP connection driven by hand: raw bytes out, frames in."""

    def __init__(self, stream: TcpStream, sock: trio.socket.SocketType) -> None:
        self.stream = stream
        self.sock = sock
        self.reader = FrameReader(stream, 1 << 30)

    @classmethod
    async def connect(cls, address: Address) -> RawPeer:
        sock = trio.socket.socket()
        await sock.connect(address)
        return cls(TcpStream(sock, "test-peer"), sock)

    async def authenticate(self, secret: str = SECRET) -> None:
        await client_handshake(self.stream, self.reader, secret.encode())

    async def send(self, data: bytes) -> None:
        await self.stream.send_parts([data])

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    async def read_frame(self, timeout_s: float = 5.0) -> tuple[Envelope, bytes | bytearray] | None:
        """The next frame, or None once the server closed the connection."""
        with trio.fail_after(timeout_s):
            try:
                return await self.reader.read_frame()
            except ThreeFSError as exc:
                if exc.code == Code.RPC_CONNECTION_CLOSED:  # reset or closed mid-frame
                    return None
                raise

    async def read_until_closed(self, timeout_s: float = 5.0) -> list[Envelope]:
        """Every frame until the server closes; fails if it does not close within ``timeout_s``."""
        envelopes = []
        with trio.fail_after(timeout_s):
            while (frame := await self.read_frame(timeout_s)) is not None:
                envelopes.append(frame[0])
        return envelopes

    async def aclose(self) -> None:
        await self.stream.aclose()


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll ``predicate`` (server-side state that has no event to wait on) until it holds."""
    with trio.fail_after(timeout_s):
        while True:
            if predicate():
                return
            await trio.sleep(0.005)


@pytest.fixture
def eventually() -> Callable[..., Awaitable[None]]:
    return wait_until


@pytest.fixture
def secret() -> str:
    return SECRET


@pytest.fixture
async def server(nursery: trio.Nursery) -> RunningServer:
    return await start_server(nursery)


@pytest.fixture
def server_factory(nursery: trio.Nursery) -> Callable[..., Awaitable[RunningServer]]:
    async def factory(**kwargs: object) -> RunningServer:
        return await start_server(nursery, **kwargs)  # type: ignore[arg-type]

    return factory


@pytest.fixture
async def client():
    async with RpcClient(SECRET, RpcClientConfig(pool_size_per_address=1)) as rpc_client:
        yield rpc_client


@pytest.fixture
def raw_peer() -> Callable[[Address], Awaitable[RawPeer]]:
    return RawPeer.connect
