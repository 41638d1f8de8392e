"""Mount options: the ``-o a,b=c`` string of ``threefs mount`` (and of ``mount -t threefs``)
parsed into ``MountOptions`` (docs/fuse.md "Options").

Defaults favour correctness across clients: entry and attribute timeouts of 0 (every lookup and
stat asks meta, so a change made through another client is seen at once), no writeback cache
(the kernel does not hold dirty pages or its own idea of the file size). Raise the timeouts and
turn writeback on for speed where one client owns its files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from threefs.errors import Code, ThreeFSError

__all__ = ["MountOptions", "parse_mount_options"]

DEFAULT_WRITE_BUFFER = 4 << 20
DEFAULT_READAHEAD = 4 << 20
DEFAULT_WRITE_BEHIND = 8 << 20
MIN_WRITE_BUFFER = 64 << 10
MAX_WRITE_BUFFER = 64 << 20
MAX_WRITE_BEHIND = 256 << 20

# Options handed to libfuse / the kernel as they are.
_PASSED = frozenset(
    {
        "allow_other",
        "allow_root",
        "default_permissions",
        "auto_unmount",
        "ro",
        "rw",
        "nosuid",
        "suid",
        "nodev",
        "dev",
        "noexec",
        "exec",
        "noatime",
        "atime",
        "relatime",
        "sync",
        "async",
        "dirsync",
    }
)
_PASSED_WITH_VALUE = frozenset({"fsname", "subtype"})
# fstab/mount(8) options that mean nothing to the daemon.
_IGNORED = frozenset({"defaults", "_netdev", "nofail", "auto", "noauto", "user", "users", "nouser", "owner"})


@dataclass
class MountOptions:
    """What ``-o`` sets. ``entry_timeout`` / ``attr_timeout`` / ``negative_timeout``: seconds
    the kernel may keep a name, attributes, or a "no such name" answer without asking again;
    ``writeback``: the kernel's writeback cache (pyfuse3 ``enable_writeback_cache``);
    ``write_buffer``: bytes buffered per open file before a write goes to storage;
    ``readahead``: bytes fetched at once when an open file is read sequentially (0: off);
    ``write_behind``: bytes per open file sent to storage in the background (0: every store
    is waited for; client/fuse/files.py);
    ``groups_timeout``: seconds a process's supplementary groups are kept (client/fuse/attrs.py);
    ``max_tasks``: concurrent requests pyfuse3 serves; ``fuse_options``: passed to libfuse."""

    entry_timeout: float = 0.0
    attr_timeout: float = 0.0
    negative_timeout: float = 0.0
    groups_timeout: float = 1.0
    writeback: bool = False
    write_buffer: int = DEFAULT_WRITE_BUFFER
    readahead: int = DEFAULT_READAHEAD
    write_behind: int = DEFAULT_WRITE_BEHIND
    max_tasks: int = 64
    debug: bool = False
    fuse_options: set[str] = field(default_factory=set)

    @property
    def allow_other(self) -> bool:
        return "allow_other" in self.fuse_options


def _seconds(name: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (seconds >= 0 and math.isfinite(seconds)):
        raise ThreeFSError(Code.CONFIG_INVALID, f"mount option {name}={value!r}: need seconds >= 0")
    return seconds


def _size(name: str, value: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = value.strip().lower()
    scale = units.get(text[-1:], 1)
    digits = text[:-1] if text[-1:] in units else text
    if not digits.isdigit():
        raise ThreeFSError(Code.CONFIG_INVALID, f"mount option {name}={value!r}: need a size like 4m")
    return int(digits) * scale


def parse_mount_options(text: str | list[str]) -> MountOptions:
    """Parse ``-o`` values (one string ``a,b=c`` or several); CONFIG_INVALID for an unknown
    option or a bad value."""
    parts = [text] if isinstance(text, str) else list(text)
    options = MountOptions()
    for item in (p.strip() for chunk in parts for p in chunk.split(",")):
        if not item or item in _IGNORED or item.startswith(("x-", "comment=")):
            continue
        name, has_value, value = item.partition("=")
        if name in _PASSED and not has_value:
            options.fuse_options.add(name)
        elif name in _PASSED_WITH_VALUE and has_value:
            options.fuse_options.add(item)
        elif name in ("entry_timeout", "attr_timeout", "negative_timeout", "groups_timeout") and has_value:
            setattr(options, name, _seconds(name, value))
        elif name in ("writeback", "writeback_cache") and not has_value:
            options.writeback = True
        elif name == "no_writeback" and not has_value:
            options.writeback = False
        elif name == "write_buffer" and has_value:
            size = _size(name, value)
            if not MIN_WRITE_BUFFER <= size <= MAX_WRITE_BUFFER:
                raise ThreeFSError(Code.CONFIG_INVALID, f"write_buffer must be in [64k, 64m], not {value}")
            options.write_buffer = size
        elif name == "readahead" and has_value:
            size = _size(name, value)
            if size and not MIN_WRITE_BUFFER <= size <= MAX_WRITE_BUFFER:
                raise ThreeFSError(Code.CONFIG_INVALID, f"readahead must be 0 or in [64k, 64m], not {value}")
            options.readahead = size
        elif name == "write_behind" and has_value:
            size = _size(name, value)
            if size and not MIN_WRITE_BUFFER <= size <= MAX_WRITE_BEHIND:
                message = f"write_behind must be 0 or in [64k, 256m], not {value}"
                raise ThreeFSError(Code.CONFIG_INVALID, message)
            options.write_behind = size
        elif name == "max_tasks" and has_value and value.isdigit() and int(value) >= 1:
            options.max_tasks = int(value)
        elif name == "debug" and not has_value:
            options.debug = True
        else:
            raise ThreeFSError(Code.CONFIG_INVALID, f"unknown or malformed mount option {item!r}")
    return options
