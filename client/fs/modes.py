"""Open modes (``'rb'``, ``'r+b'``, ``'wb'``, ``'ab'``, ``'xb'``, ...) as meta open flags."""

from __future__ import annotations

from dataclasses import dataclass

from threefs.wire.meta import OpenFlags

__all__ = ["OpenMode", "parse_mode"]


@dataclass(frozen=True)
class OpenMode:
    """What a mode string asks: the meta ``flags``, and whether the file reads, writes and
    appends (every write at the end)."""

    mode: str
    flags: int
    readable: bool
    writable: bool
    append: bool


def parse_mode(mode: str) -> OpenMode:
    """``mode`` as Python's ``open`` reads it, binary only: one of r/w/a/x, optional ``+``,
    optional ``b`` (files are always binary). Raises ``ValueError`` for anything else (text
    mode included)."""
    letters = set(mode)
    kinds = letters & set("rwax")
    if (
        len(kinds) != 1 or not letters <= set("rwax+b") or len(mode) != len(letters)  # a letter twice
    ):
        raise ValueError(f"invalid mode: {mode!r} (binary modes only: rb, wb, ab, xb, r+b, w+b, a+b)")
    kind = kinds.pop()
    plus = "+" in letters
    readable = kind == "r" or plus
    writable = kind != "r" or plus
    flags = 0
    if readable:
        flags |= OpenFlags.READ
    if writable:
        flags |= OpenFlags.WRITE
    if kind == "w":
        flags |= OpenFlags.CREATE | OpenFlags.TRUNCATE
    elif kind == "a":
        flags |= OpenFlags.CREATE | OpenFlags.APPEND
    elif kind == "x":
        flags |= OpenFlags.CREATE | OpenFlags.EXCLUSIVE
    canonical = {"r": "rb", "w": "wb", "a": "ab", "x": "xb"}[kind]
    if plus:
        canonical = canonical[0] + "+b"
    return OpenMode(canonical, int(flags), readable, writable, kind == "a")
