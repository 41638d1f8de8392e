"""Mount points as the kernel lists them (``/proc/self/mountinfo``), without touching the file
systems mounted there.

``os.path.ismount`` calls ``lstat`` on the path, and on a FUSE mount that is a request to the
daemon: while the daemon waits for a service that is down (meta restarting) the call blocks for
the client's whole retry budget and then fails, and ``ismount`` answers False for a path that
is mounted. Commands that must work in exactly that situation (``threefs up`` restarting meta,
``threefs down``, ``threefs umount``) ask the kernel's table instead.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["is_mount_point", "mount_points", "mount_type"]

_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def mount_points(mountinfo: str | None = None) -> dict[str, str]:
    """The mount points of this process's mount namespace and the type of what is mounted on
    each (the last mount on a point wins), from ``mountinfo``'s text or ``/proc/self/mountinfo``."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    points = {}
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            after = fields.index("-", 5) + 1 if "-" in fields[5:] else len(fields)
            points[_unescape(fields[4])] = fields[after] if after < len(fields) else ""
    return points


def mount_type(path: str | os.PathLike[str], mountinfo: str | None = None) -> str | None:
    """The file system type mounted on ``path`` (``fuse.threefs`` for a threefs mount), None when
    ``path`` (made absolute, symlinks not followed) is no mount point. Never calls into the file
    system mounted there."""
    return mount_points(mountinfo).get(os.path.normpath(os.path.abspath(path)))


def is_mount_point(path: str | os.PathLike[str], mountinfo: str | None = None) -> bool:
    """Whether ``path`` is a mount point (see ``mount_type``)."""
    return mount_type(path, mountinfo) is not None
