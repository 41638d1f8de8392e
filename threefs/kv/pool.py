"""The idle-connection pool the SQL engines share (sqlite, postgres)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

__all__ = ["IdlePool"]


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class IdlePool(Generic[C]):
    """Connections kept idle for reuse; thread-safe.

    ``take()`` hands out an idle connection or a new one from ``connect()``. ``give(conn)`` keeps
    it when the pool is open, ``reusable(conn)`` says yes and fewer than ``max_idle`` (None: no
    bound) are idle; otherwise it closes it. ``close()`` closes every idle connection, and from
    then on every connection given back is closed.
    """

    def __init__(
        self, connect: Callable[[], C], reusable: Callable[[C], bool], max_idle: int | None = None
    ) -> None:
        self._connect = connect
        self._reusable = reusable
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: list[C] = []
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def take(self) -> C:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def give(self, conn: C) -> None:
        with self._lock:
            room = self._max_idle is None or len(self._idle) < self._max_idle
            if not self._closed and room and self._reusable(conn):
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
