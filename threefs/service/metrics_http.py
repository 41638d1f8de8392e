"""``GET /metrics`` over HTTP for a Prometheus ``CollectorRegistry``: a small trio server (no
thread), so a scrape reads service state from the trio thread like every other reader."""

from __future__ import annotations

import logging

import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["serve_metrics"]

log = logging.getLogger("threefs.metrics")

_MAX_REQUEST_BYTES = 8192
_REQUEST_TIMEOUT_S = 5.0
_HEAD = b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"


async def serve_metrics(
    registry: CollectorRegistry,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``GET /metrics`` (and ``/``) on ``host:port`` until cancelled; reports the bound port
    (``port`` 0: any free one). Other paths get 404; a slow or broken client is dropped after
    5 s without affecting the service."""

    async def handle(stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(_REQUEST_TIMEOUT_S):
                request = b""
                while b"\r\n\r\n" not in request and len(request) < _MAX_REQUEST_BYTES:
                    data = await stream.receive_some(4096)
                    if not data:
                        break
                    request += data
                method, _, rest = request.partition(b" ")
                path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
                if method == b"GET" and path in (b"/metrics", b"/"):
                    status, content_type, body = (
                        b"200 OK",
                        CONTENT_TYPE_LATEST.encode(),
                        generate_latest(registry),
                    )
                else:
                    status, content_type, body = b"404 Not Found", b"text/plain", b"try GET /metrics\n"
                await stream.send_all(_HEAD % (status, content_type, len(body)) + body)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.debug("metrics request failed: %s", exc)
        finally:
            await stream.aclose()

    listeners = await trio.open_tcp_listeners(port, host=host)
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)
