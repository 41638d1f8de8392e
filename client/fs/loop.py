"""``LoopThread``: a trio event loop in a background thread, for the synchronous API. Any
thread may call ``run`` at the same time; the loop runs their calls concurrently."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

import trio

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread(Generic[T]):
    """Runs ``trio.run`` in a daemon thread named ``name``, inside ``async with resource()``;
    ``start`` returns the resource once entered (or raises what entering raised). ``run``
    calls an async function on the loop from any other thread and returns its result (its
    exception propagates). ``close`` leaves the resource's block and ends the thread."""

    def __init__(
        self, resource: Callable[[], AbstractAsyncContextManager[T]], name: str = "threefs-loop"
    ) -> None:
        self._resource = resource
        self._name = name
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._ready = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._close_lock = threading.Lock()

    def start(self) -> T:
        self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self._closed = True
            raise self._error
        return self._value  # type: ignore[return-value]

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:  # handed to start(); nothing else would see it
            if not self._ready.is_set():
                self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._stop = trio.Event()
        async with self._resource() as value:
            self._value = value
            self._token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await self._stop.wait()

    @property
    def closed(self) -> bool:
        return self._closed

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def run(self, function: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """``await function(*args)`` on the loop. ValueError once closed; RuntimeError when called
        from the loop's own thread (trio code uses the async API instead)."""
        if self._closed or self._token is None:
            raise ValueError("the file system is closed")
        if self.in_loop_thread():
            raise RuntimeError("the synchronous file system API cannot be used inside its own event loop")
        try:
            return trio.from_thread.run(function, *args, trio_token=self._token)
        except trio.RunFinishedError:
            raise ValueError("the file system is closed") from None

    def close(self) -> None:
        """Leave the resource's block and join the thread; idempotent. Calls still running are
        cancelled."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if self._token is not None and self._stop is not None:
            try:
                trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
            except trio.RunFinishedError:
                pass
        if self._thread is not None and not self.in_loop_thread():
            self._thread.join()
