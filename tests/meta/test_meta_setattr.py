"""setattr (meta/ops/setattr.py): chmod, chown/chgrp, times, truncate, and who may do what."""

from __future__ import annotations

import os
import time

import pytest

from meta.ops.context import MetaEnv, file_time_ns
from meta.ops.setattr import set_attr
from threefs.errors import Code, ThreeFSError
from threefs.wire import meta as wire
from threefs.wire.meta import ROOT_INODE, InodeType, PathAt, TimeSpec

NOW = TimeSpec(now=True)


def setattr_(fs, path, *, caller=None, request=None, follow=True, **changes):
    req = wire.SetAttrRequest(
        at=PathAt(ROOT_INODE, os.fsencode(path)),
        follow=follow,
        caller=caller or fs.caller,
        request=request or fs.request_id(),
        **changes,
    )
    return fs.call(set_attr, req).inode


def touch(fs, path, mode=0o644):
    return fs.mknod(path, InodeType.FILE, mode)


def refused(fs, code, fn, *args, **kwargs):
    before = fs.snapshot()
    with pytest.raises(ThreeFSError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, info.value
    assert fs.snapshot() == before


def test_chmod_by_owner_and_root(fs):
    user = fs.as_user(1000)
    fs.mkdir("home", 0o777)
    file = touch(user, "home/f")
    changed = setattr_(user, "home/f", mode=0o600)
    assert changed.mode == 0o600 and changed.ctime_ns > file.ctime_ns
    assert fs.stat("home/f").mode == 0o600
    assert setattr_(fs, "home/f", mode=0o4755).mode == 0o4755  # admin root


def test_chmod_refusals(local_fs):
    touch(local_fs, "f")
    user = local_fs.as_user(1000)
    refused(local_fs, Code.META_NOT_PERMITTED, setattr_, user, "f", mode=0o777)
    # uid 0 without the admin flag is an ordinary user
    local_fs.mkdir("home", 0o777)
    touch(user, "home/g")
    refused(local_fs, Code.META_NOT_PERMITTED, setattr_, local_fs.as_user(0), "home/g", mode=0o777)


def test_setgid_dropped_for_an_owner_outside_the_group(local_fs):
    local_fs.mkdir("home", 0o777)
    user = local_fs.as_user(1000, 1000, groups=(50,))
    touch(user, "home/f")
    assert setattr_(user, "home/f", mode=0o2755).mode == 0o2755  # own group
    setattr_(local_fs, "home/f", gid=99)
    assert setattr_(user, "home/f", mode=0o2755).mode == 0o755  # not in group 99
    assert setattr_(local_fs, "home/f", mode=0o2755).mode == 0o2755  # admin root keeps it


def test_chown_is_for_root_and_chgrp_for_members(local_fs):
    local_fs.mkdir("home", 0o777)
    user = local_fs.as_user(1000, 1000, groups=(50,))
    touch(user, "home/f")
    refused(local_fs, Code.META_NOT_PERMITTED, setattr_, user, "home/f", uid=2000)
    assert setattr_(user, "home/f", uid=1000).uid == 1000  # to itself: allowed
    refused(local_fs, Code.META_NOT_PERMITTED, setattr_, user, "home/f", gid=60)
    assert setattr_(user, "home/f", gid=50).gid == 50
    refused(local_fs, Code.META_NOT_PERMITTED, setattr_, local_fs.as_user(2000), "home/f", gid=2000)
    changed = setattr_(local_fs, "home/f", uid=3000, gid=3000)
    assert (changed.uid, changed.gid) == (3000, 3000)


def test_owner_change_clears_setuid_and_setgid_on_files(local_fs):
    touch(local_fs, "f", 0o6755)
    assert setattr_(local_fs, "f", uid=1000).mode == 0o755
    touch(local_fs, "g", 0o6745)  # setgid without group exec is a lock marker: kept
    assert setattr_(local_fs, "g", gid=5).mode == 0o2745
    local_fs.mkdir("d", 0o2755)
    assert setattr_(local_fs, "d", uid=1000).mode & 0o2000


def test_times(local_fs):
    local_fs.mkdir("home", 0o777)
    owner, other = local_fs.as_user(1000), local_fs.as_user(2000)
    touch(owner, "home/f", 0o666)
    touch(owner, "home/private", 0o644)
    changed = setattr_(owner, "home/f", atime=TimeSpec(ns=5), mtime=TimeSpec(ns=7))
    assert (changed.atime_ns, changed.mtime_ns) == (5, 7)
    # "now" by anyone who may write; a value only by the owner or root
    changed = setattr_(other, "home/f", atime=NOW, mtime=NOW)
    assert changed.atime_ns == changed.mtime_ns == changed.ctime_ns > 7
    refused(local_fs, Code.META_NOT_PERMITTED, setattr_, other, "home/f", mtime=TimeSpec(ns=1))
    refused(local_fs, Code.META_PERMISSION_DENIED, setattr_, other, "home/private", mtime=NOW)
    assert setattr_(local_fs, "home/private", mtime=TimeSpec(ns=3)).mtime_ns == 3


def test_truncate(fs):
    file = touch(fs, "f", 0o666)
    grown = setattr_(fs, "f", length=1 << 20)
    assert grown.length == 1 << 20 and grown.truncate_version == file.truncate_version
    assert grown.mtime_ns > file.mtime_ns
    shrunk = setattr_(fs, "f", length=10)
    assert shrunk.length == 10 and shrunk.truncate_version == file.truncate_version + 1
    assert fs.stat("f").length == 10
    explicit = setattr_(fs, "f", length=0, mtime=TimeSpec(ns=42))
    assert explicit.mtime_ns == 42 and explicit.truncate_version == file.truncate_version + 2


def test_truncate_refusals(local_fs):
    local_fs.mkdir("d")
    touch(local_fs, "ro", 0o644)
    local_fs.symlink("ro", "link")
    local_fs.mknod("fifo", InodeType.FIFO)
    refused(local_fs, Code.META_IS_DIRECTORY, setattr_, local_fs, "d", length=0)
    refused(local_fs, Code.INVALID_ARG, setattr_, local_fs, "fifo", length=0)
    refused(local_fs, Code.INVALID_ARG, setattr_, local_fs, "link", follow=False, length=0)
    refused(local_fs, Code.META_PERMISSION_DENIED, setattr_, local_fs.as_user(1000), "ro", length=0)
    assert setattr_(local_fs, "link", length=3).length == 3  # followed to the file


def test_empty_setattr_changes_nothing(local_fs):
    file = touch(local_fs, "f")
    assert setattr_(local_fs, "f") == file


def test_setattr_is_idempotent(local_fs):
    touch(local_fs, "f")
    request = local_fs.request_id()
    first = setattr_(local_fs, "f", mode=0o600, request=request)
    setattr_(local_fs, "f", mode=0o644)
    assert setattr_(local_fs, "f", mode=0o600, request=request) == first
    assert local_fs.stat("f").mode == 0o644


def test_meta_stamps_times_with_the_clock_the_kernel_renders_now_with():
    """A FUSE ``touch`` sends the kernel's coarse "now"; meta's own stamps, taken earlier,
    must never be later than it (tests/fuse ``test_touch_never_moves_mtime_back``)."""
    assert MetaEnv.__dataclass_fields__["clock_ns"].default is file_time_ns
    coarse = getattr(time, "CLOCK_REALTIME_COARSE", 5)
    for _ in range(20_000):
        stamped = file_time_ns()
        assert stamped <= time.clock_gettime_ns(coarse)
