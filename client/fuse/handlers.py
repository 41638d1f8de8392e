"""The error boundary of the FUSE daemon: the only place where errors become errno.

Any exception other than ``pyfuse3.FUSEError`` escaping a handler ends ``pyfuse3.main()`` and
leaves a dead mount ("Transport endpoint is not connected"). ``fuse_handler`` wraps every
handler of ``ThreeFSOperations``: a ``ThreeFSError`` becomes ``FUSEError(its errno)`` (logged at
debug level: ENOENT and EACCES are everyday answers), anything else is logged with its
traceback and answered with EIO. Cancellation (the mount shutting down) passes through.
"""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pyfuse3

from threefs.errors import ThreeFSError

__all__ = ["FAULT_ENV", "fuse_handler"]

log = logging.getLogger("client.fuse")

T = TypeVar("T")

# Test hook: a lookup of this name raises an unexpected exception (tests/fuse: EIO, mount stays up).
FAULT_ENV = "THREEFS_FUSE_FAULT_NAME"


def fuse_handler(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Wrap an async pyfuse3 handler so only ``FUSEError`` leaves it (see the module docstring)."""

    @functools.wraps(fn)
    async def handler(*args: Any, **kwargs: Any) -> T:
        try:
            return await fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except ThreeFSError as exc:
            log.debug("%s: %s", fn.__name__, exc)
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        except OSError as exc:  # a local failure with a meaning of its own (/proc gone, ...)
            log.warning("%s: %s", fn.__name__, exc)
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        except Exception:
            log.exception("unexpected error in FUSE handler %s: answering EIO", fn.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None

    return handler
