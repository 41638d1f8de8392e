"""``meta.components.callers.check_caller``: which callers a user-token connection may send."""

from __future__ import annotations

import pytest

from meta.components.callers import check_caller
from threefs.errors import Code, ThreeFSError
from threefs.rpc import Identity
from threefs.wire import meta as wire
from threefs.wire.meta import Caller

BOB = Identity(name="bob", uid=1000, gid=1000, groups=frozenset({100, 200}))
FUSE = Identity(name="fuse", uid=0, gid=0, impersonate=True)
OPS = Identity(name="ops", uid=500, gid=500, admin=True)


@pytest.mark.parametrize(
    ("identity", "caller", "spec"),
    [
        (BOB, Caller(uid=1000, gid=1000, groups=[100, 200]), wire.MKDIR),
        (BOB, Caller(uid=1000, gid=1000, groups=[1000, 100]), wire.MKDIR),  # its gid as a group
        (BOB, Caller(uid=1000, gid=1000), wire.STAT),
        (FUSE, Caller(uid=4242, gid=7, groups=[8, 9]), wire.OPEN),
        (OPS, Caller(uid=0, gid=0, admin=True), wire.FSCK),  # an admin acts as anyone
        (OPS, Caller(uid=77, gid=77), wire.GC_LIST),
    ],
)
def test_allowed(identity, caller, spec):
    check_caller(identity, spec, caller)


@pytest.mark.parametrize(
    ("identity", "caller", "spec", "why"),
    [
        (BOB, Caller(uid=0, gid=1000), wire.MKDIR, "not as uid 0 gid 1000"),
        (BOB, Caller(uid=1000, gid=100), wire.MKDIR, "not as uid 1000 gid 100"),
        (BOB, Caller(uid=1000, gid=1000, groups=[100, 300]), wire.MKDIR, "not in group(s) [300]"),
        (BOB, Caller(uid=1000, gid=1000, admin=True), wire.STAT, "may not act with the admin flag"),
        (BOB, Caller(uid=1000, gid=1000), wire.FSCK, "Meta.Fsck needs one"),
        (BOB, Caller(uid=1000, gid=1000), wire.GC_LIST, "Meta.GcList needs one"),
        (FUSE, Caller(uid=0, gid=0, admin=True), wire.MKDIR, "may not act with the admin flag"),
        (FUSE, Caller(uid=5, gid=5), wire.FSCK, "Meta.Fsck needs one"),
    ],
)
def test_refused(identity, caller, spec, why):
    with pytest.raises(ThreeFSError) as caught:
        check_caller(identity, spec, caller)
    assert caught.value.code == Code.META_NOT_PERMITTED
    assert f"user {identity.name!r}" in caught.value.message and why in caught.value.message
