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

__all__ = ["is_mount_point", "mount_points"]

_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def mount_points(mountinfo: str | None = None) -> set[str]:
    """The mount points of this process's mount namespace (from ``mountinfo``'s text, or read
    from ``/proc/self/mountinfo``)."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    points = set()
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            points.add(_unescape(fields[4]))
    return points


def is_mount_point(path: str | os.PathLike[str], mountinfo: str | None = None) -> bool:
    """Whether ``path`` (made absolute, symlinks not followed) is a mount point; never calls
    into the file system mounted there."""
    return os.path.normpath(os.path.abspath(path)) in mount_points(mountinfo)
