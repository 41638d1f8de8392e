"""TcpStream's eager sends and receives: calls the kernel completes at once skip trio's
scheduler, but a busy stream still yields regularly and still honours cancellation."""

from __future__ import annotations

import pytest
import trio

from threefs.rpc import transport
from threefs.rpc.transport import TcpStream


async def test_a_stream_with_data_always_waiting_still_lets_other_tasks_run():
    left, right = trio.socket.socketpair()
    sender, receiver = TcpStream(left, "left"), TcpStream(right, "right")
    await sender.send_parts([b"x" * 4000])
    others = 0

    async def other() -> None:
        nonlocal others
        while True:
            others += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        await trio.lowlevel.checkpoint()
        before = others
        buffer = memoryview(bytearray(10))
        for _ in range(transport._EAGER_BUDGET * 10):
            assert await receiver.receive_into(buffer) == 10  # always ready: 4,000 bytes queued
        # about one yield per budget of eager receives (10 here; trio's scheduling order adds
        # some slack); without the budget the other task would not run at all
        assert others - before >= 5
        nursery.cancel_scope.cancel()
    await sender.aclose()
    await receiver.aclose()


async def test_a_ready_receive_or_send_is_still_cancelled():
    left, right = trio.socket.socketpair()
    sender, receiver = TcpStream(left, "left"), TcpStream(right, "right")
    await sender.send_parts([b"data"])
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await receiver.receive_into(memoryview(bytearray(10)))
        with pytest.raises(trio.Cancelled):
            await sender.send_parts([b"more"])
    assert await receiver.receive_into(memoryview(bytearray(10))) == 4  # nothing was consumed
    await sender.aclose()
    await receiver.aclose()
