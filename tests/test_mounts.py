"""threefs.mounts: mount points from the kernel's table, without a stat of the mounted path."""

from __future__ import annotations

import os

from threefs.mounts import is_mount_point, mount_points, mount_type

MOUNTINFO = (
    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "43 22 0:39 / /tmp/my\\040mount rw,nosuid - fuse.threefs threefs rw,user_id=0\n"
    "44 22 0:40 / /srv/back\\134slash rw - tmpfs tmpfs rw\n"
)


def test_escaped_paths_are_read_back():
    assert mount_points(MOUNTINFO) == {
        "/": "ext4",
        "/tmp/my mount": "fuse.threefs",
        "/srv/back\\slash": "tmpfs",
    }
    assert mount_type("/tmp/my mount", MOUNTINFO) == "fuse.threefs"
    assert mount_type("/tmp", MOUNTINFO) is None
    assert is_mount_point("/tmp/my mount", MOUNTINFO)
    assert is_mount_point("/tmp/my mount/", MOUNTINFO)  # normalized
    assert is_mount_point("/tmp/./my mount", MOUNTINFO)
    assert not is_mount_point("/tmp/my", MOUNTINFO)
    assert not is_mount_point("/tmp", MOUNTINFO)


def test_this_machine(tmp_path):
    assert is_mount_point("/") and is_mount_point("/proc")
    assert not is_mount_point(tmp_path)
    assert is_mount_point("/proc") == os.path.ismount("/proc")
