"""Where ``ThreeFSError`` becomes ``OSError``: the file system API raises only ``OSError``
subclasses (``FileNotFoundError``, ``FileExistsError``, ...), with the errno the error registry
gives each code, the path(s) involved, and the ``ThreeFSError`` as ``__cause__``."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from threefs.errors import Code, ThreeFSError

__all__ = ["bad_mode", "closed_file", "os_error", "os_errors"]


def os_error(exc: ThreeFSError, path: Any = None, path2: Any = None) -> OSError:
    """The ``OSError`` for ``exc``: ``OSError(errno, ...)`` picks the subclass itself
    (ENOENT -> FileNotFoundError, EEXIST -> FileExistsError, ...). ``code`` keeps the threefs code."""
    number = exc.errno or errno.EIO
    message = f"{os.strerror(number)} ({exc.code.name}: {exc.message})"
    if path is None:
        error = OSError(number, message)
    elif path2 is None:
        error = OSError(number, message, os.fsdecode(path))
    else:
        error = OSError(number, message, os.fsdecode(path), None, os.fsdecode(path2))
    error.code = exc.code  # type: ignore[attr-defined]
    return error


@contextmanager
def os_errors(path: Any = None, path2: Any = None) -> Iterator[None]:
    """Turn a ``ThreeFSError`` raised inside the block into ``os_error(exc, path, path2)``."""
    try:
        yield
    except ThreeFSError as exc:
        raise os_error(exc, path, path2) from exc


def closed_file() -> ValueError:
    """What ``io`` raises for an operation on a closed file."""
    return ValueError("I/O operation on closed file")


def bad_mode(what: str) -> OSError:
    """An operation the open mode does not allow (``io.UnsupportedOperation`` is an OSError)."""
    import io

    error = io.UnsupportedOperation(f"file not open for {what}")
    error.code = Code.CLIENT_BAD_HANDLE  # type: ignore[attr-defined]
    return error
