"""Idempotent client requests: the answer of each completed update is remembered under its tag,
so a retry gets the first answer instead of running again.

Per ``(method, client_id, channel)`` the answers of the last ``seqs_per_channel`` sequence
numbers are kept; channels are evicted least recently used beyond ``max_channels``. A duplicate
that arrives while the first is still running waits for it and takes its answer; if the first
fails (an error, or cancellation), errors are not remembered and the waiter runs the request
itself. Memory only: a restarted node has forgotten everything, and a retry that reaches it (or
a new head) runs again, which the CRAQ path makes harmless for a whole-range write.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from threefs.wire.storage import RequestTag

__all__ = ["RequestDedup"]

T = TypeVar("T")
_Channel = tuple[str, bytes, int]


class RequestDedup:
    """Remembered answers (see the module docstring). ``hits`` counts duplicates answered from
    memory or from the first run."""

    def __init__(self, seqs_per_channel: int = 16, max_channels: int = 65536) -> None:
        self.seqs_per_channel = seqs_per_channel
        self.max_channels = max_channels
        self._done: OrderedDict[_Channel, OrderedDict[int, Any]] = OrderedDict()
        self._running: dict[tuple[_Channel, int], trio.Event] = {}
        self.hits = 0

    def __len__(self) -> int:
        return sum(len(answers) for answers in self._done.values())

    def lookup(self, method: str, tag: RequestTag) -> Any | None:
        """The remembered answer of ``tag`` (None when there is none)."""
        answers = self._done.get((method, tag.client_id, tag.channel))
        return None if answers is None else answers.get(tag.seq)

    async def run(self, method: str, tag: RequestTag, request: Callable[[], Awaitable[T]]) -> T:
        """The answer of ``tag``: remembered, the running first attempt's, or ``request()``'s."""
        channel = (method, tag.client_id, tag.channel)
        key = (channel, tag.seq)
        while True:
            answers = self._done.get(channel)
            if answers is not None and tag.seq in answers:
                self._done.move_to_end(channel)
                self.hits += 1
                return answers[tag.seq]
            running = self._running.get(key)
            if running is None:
                break
            await running.wait()
        event = self._running[key] = trio.Event()
        try:
            answer = await request()
            self._remember(channel, tag.seq, answer)
            return answer
        finally:
            del self._running[key]
            event.set()

    def _remember(self, channel: _Channel, seq: int, answer: Any) -> None:
        answers = self._done.get(channel)
        if answers is None:
            answers = self._done[channel] = OrderedDict()
            while len(self._done) > self.max_channels:
                self._done.popitem(last=False)
        else:
            self._done.move_to_end(channel)
        answers[seq] = answer
        while len(answers) > self.seqs_per_channel:
            answers.popitem(last=False)
