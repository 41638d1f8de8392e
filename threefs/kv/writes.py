"""Buffered writes of one transaction and the read-your-writes merge over a snapshot.

Engines that apply writes only at commit (mem) keep them here; reads consult the buffer first.
A cleared range removes the buffered sets it covers, so replaying ``cleared_ranges`` and then
``sets`` reproduces the transaction's writes in order.
"""

from __future__ import annotations

from threefs.kv.interface import KeyValue

__all__ = ["WriteBuffer", "limited_read_range"]


class WriteBuffer:
    """The uncommitted sets, point clears and range clears of one transaction."""

    def __init__(self) -> None:
        self._sets: dict[bytes, bytes | None] = {}  # None: the key was cleared
        self._cleared: list[tuple[bytes, bytes]] = []

    def __bool__(self) -> bool:
        return bool(self._sets) or bool(self._cleared)

    @property
    def sets(self) -> dict[bytes, bytes | None]:
        """Key -> value written last (None for a clear). Apply after ``cleared_ranges``."""
        return self._sets

    @property
    def cleared_ranges(self) -> list[tuple[bytes, bytes]]:
        """The ``[begin, end)`` ranges cleared, in call order."""
        return self._cleared

    def set(self, key: bytes, value: bytes) -> None:
        self._sets[key] = value

    def clear(self, key: bytes) -> None:
        self._sets[key] = None

    def clear_range(self, begin: bytes, end: bytes) -> None:
        for key in [k for k in self._sets if begin <= k < end]:
            del self._sets[key]
        self._cleared.append((begin, end))

    def lookup(self, key: bytes) -> tuple[bool, bytes | None]:
        """``(True, value_or_None)`` when the buffer decides ``key``; ``(False, None)`` otherwise."""
        if key in self._sets:
            return True, self._sets[key]
        if any(begin <= key < end for begin, end in self._cleared):
            return True, None
        return False, None

    def touches(self, begin: bytes, end: bytes) -> bool:
        """Whether any buffered write falls in ``[begin, end)``."""
        if any(b < end and begin < e for b, e in self._cleared):
            return True
        return any(begin <= k < end for k in self._sets)

    def merge(
        self, committed: list[KeyValue], begin: bytes, end: bytes, limit: int, reverse: bool
    ) -> list[KeyValue]:
        """Overlay the buffer on ``committed`` (all pairs of ``[begin, end)``, ascending).

        Returns the pairs a read of ``[begin, end)`` with ``limit``/``reverse`` must see.
        """
        merged: dict[bytes, bytes] = {}
        for key, value in committed:
            if not any(b <= key < e for b, e in self._cleared):
                merged[key] = value
        for key, value in self._sets.items():
            if begin <= key < end:
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
        keys = sorted(merged, reverse=reverse)
        if limit:
            keys = keys[:limit]
        return [(key, merged[key]) for key in keys]

    def write_conflict_ranges(self) -> list[tuple[bytes, bytes]]:
        """The ranges this transaction's commit changes."""
        ranges = list(self._cleared)
        ranges.extend((key, key + b"\x00") for key in self._sets)
        return ranges


def limited_read_range(
    begin: bytes, end: bytes, limit: int, reverse: bool, result: list[KeyValue]
) -> tuple[bytes, bytes]:
    """The range a read actually depended on: less than ``[begin, end)`` when the limit was hit.

    FoundationDB does the same, so a limited scan does not conflict with writes past its end.
    """
    if not limit or len(result) < limit:
        return begin, end
    last_key = result[-1][0]
    if reverse:
        return last_key, end
    return begin, last_key + b"\x00"
