"""One ``key=value`` log line per event on stderr, the same on every service."""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["LogfmtFormatter", "configure_logging"]


class LogfmtFormatter(logging.Formatter):
    """``ts=... level=INFO logger=mgmtd.lease msg="..."`` (plus ``exc="..."``), one line each;
    messages and tracebacks are JSON-quoted so a line never breaks."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = (
            f"ts={stamp}.{int(record.msecs):03d}Z level={record.levelname} logger={record.name} "
            f"msg={json.dumps(record.getMessage())}"
        )
        if record.exc_info:
            line += f" exc={json.dumps(self.formatException(record.exc_info))}"
        return line


def configure_logging(level: str) -> None:
    """Send every logger's records at ``level`` and above to stderr as logfmt lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
