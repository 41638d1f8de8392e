"""One ``key=value`` log line per event on stderr, the same on every service.

A line reads ``ts=2024-06-10T12:00:00.123Z level=WARNING node=11 role=storage
logger=threefs.rpc.server msg="..." request_id=17``: the time (UTC), the level, the process's
node id and role (when the service configured them), the logger, the message, then any fields
the call passed as ``extra={...}`` (``log.debug("retrying", extra={"attempt": 2})``), then
``exc="..."`` for a traceback. Values that are not plain words are JSON-quoted, so a line never
breaks and ``key=value`` splitting stays unambiguous.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

__all__ = ["LogfmtFormatter", "configure_logging"]

# Attributes every LogRecord has: anything else on a record came from ``extra``.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_PLAIN = re.compile(r"[A-Za-z0-9_.:/@+-]+")


def _value(value: object) -> str:
    """``value`` as a logfmt value: numbers and plain words as they are, the rest JSON-quoted."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    text = value if isinstance(value, str) else str(value)
    return text if _PLAIN.fullmatch(text) else json.dumps(text)


class LogfmtFormatter(logging.Formatter):
    """Formats records as described in the module docstring. ``node_id`` and ``role`` (e.g. 11
    and ``"storage"``) go into every line when given; without them the fields are left out."""

    def __init__(self, *, node_id: int | None = None, role: str = "") -> None:
        super().__init__()
        labels = []
        if node_id is not None:
            labels.append(f"node={_value(node_id)}")
        if role:
            labels.append(f"role={_value(role)}")
        self._labels = "".join(f" {label}" for label in labels)

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = (
            f"ts={stamp}.{int(record.msecs):03d}Z level={record.levelname}{self._labels} "
            f"logger={record.name} msg={json.dumps(record.getMessage())}"
        )
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES:
                line += f" {key}={_value(value)}"
        if record.exc_info:
            line += f" exc={json.dumps(self.formatException(record.exc_info))}"
        return line


def configure_logging(level: str, *, node_id: int | None = None, role: str = "") -> None:
    """Send every logger's records at ``level`` and above to stderr as logfmt lines, each
    carrying ``node=<node_id> role=<role>`` when given (a service's main passes its own)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter(node_id=node_id, role=role))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
