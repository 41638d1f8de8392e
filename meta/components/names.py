"""Name and path rules (POSIX, Linux limits), checked before anything is read or changed.

- a component is 1..255 bytes without ``/`` or NUL (META_NAME_TOO_LONG / META_INVALID_NAME);
- a path is at most 4096 bytes (META_PATH_TOO_LONG); repeated and trailing slashes are allowed
  (``a//b/`` is ``a/b``);
- ``.`` and ``..`` are valid path components to walk through, but never names to create or
  remove (``check_new_name`` refuses them).
"""

from __future__ import annotations

from threefs.errors import Code, ThreeFSError
from threefs.wire.meta import MAX_NAME_BYTES, MAX_PATH_BYTES

__all__ = ["check_name", "check_new_name", "check_path", "split_path"]


def check_name(name: bytes) -> bytes:
    """A single component (``.``/``..`` allowed); returns it."""
    if not name:
        raise ThreeFSError(Code.META_INVALID_NAME, "empty name")
    if len(name) > MAX_NAME_BYTES:
        raise ThreeFSError(Code.META_NAME_TOO_LONG, f"name of {len(name)} bytes (limit {MAX_NAME_BYTES})")
    if b"/" in name or b"\x00" in name:
        raise ThreeFSError(Code.META_INVALID_NAME, f"name {name!r} holds '/' or NUL")
    return name


def check_new_name(name: bytes) -> bytes:
    """A name an entry may be created with or removed by: not ``.`` or ``..``."""
    check_name(name)
    if name in (b".", b".."):
        raise ThreeFSError(Code.META_INVALID_NAME, f"{name.decode()!r} cannot be created, removed or renamed")
    return name


def check_path(path: bytes) -> bytes:
    if len(path) > MAX_PATH_BYTES:
        raise ThreeFSError(Code.META_PATH_TOO_LONG, f"path of {len(path)} bytes (limit {MAX_PATH_BYTES})")
    if b"\x00" in path:
        raise ThreeFSError(Code.META_INVALID_NAME, "path holds NUL")
    return path


def split_path(path: bytes) -> tuple[bool, list[bytes]]:
    """``(absolute, components)``; every component checked with ``check_name``."""
    check_path(path)
    return path.startswith(b"/"), [check_name(part) for part in path.split(b"/") if part]
