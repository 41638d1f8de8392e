"""Extended attributes in meta: limits, flags, namespaces, permissions, and cleanup with the inode."""

from __future__ import annotations

import pytest
from meta_fs import MetaFs, expect_code

from meta.ops.remove import remove
from meta.ops.xattr import get_xattr, list_xattr, remove_xattr, set_xattr
from threefs.errors import Code
from threefs.kv import keys
from threefs.wire import meta as wire
from threefs.wire.meta import ROOT_INODE, InodeType, PathAt, XattrFlags


def at(path: str | PathAt) -> PathAt:
    return path if isinstance(path, PathAt) else PathAt(ROOT_INODE, path.encode())


def setx(fs: MetaFs, path, name: bytes, value: bytes, flags: int = 0, follow: bool = True):
    request = wire.SetXattrRequest(
        at=at(path),
        name=name,
        value=value,
        flags=flags,
        follow=follow,
        request=fs.request_id(),
        caller=fs.caller,
    )
    return fs.call(set_xattr, request).inode


def getx(fs: MetaFs, path, name: bytes, follow: bool = True) -> bytes:
    request = wire.GetXattrRequest(at=at(path), name=name, follow=follow, caller=fs.caller)
    return fs.call(get_xattr, request, read_only=True).value


def listx(fs: MetaFs, path, follow: bool = True) -> list[bytes]:
    request = wire.ListXattrRequest(at=at(path), follow=follow, caller=fs.caller)
    return fs.call(list_xattr, request, read_only=True).names


def rmx(fs: MetaFs, path, name: bytes):
    request = wire.RemoveXattrRequest(at=at(path), name=name, request=fs.request_id(), caller=fs.caller)
    return fs.call(remove_xattr, request).inode


def test_set_get_list_remove(local_fs: MetaFs) -> None:
    fs = local_fs
    before = fs.create("f")
    touched = setx(fs, "f", b"user.a", b"1")
    assert touched.ctime_ns > before.ctime_ns
    setx(fs, "f", b"user.b", b"")
    setx(fs, "f", b"user.a", b"22")
    assert getx(fs, "f", b"user.a") == b"22"
    assert getx(fs, "f", b"user.b") == b""
    assert listx(fs, "f") == [b"user.a", b"user.b"]
    rmx(fs, "f", b"user.a")
    assert listx(fs, "f") == [b"user.b"]
    with expect_code(Code.META_NO_XATTR):
        getx(fs, "f", b"user.a")
    with expect_code(Code.META_NO_XATTR):
        rmx(fs, "f", b"user.a")


def test_flags(mem_fs: MetaFs) -> None:
    fs = mem_fs
    fs.create("f")
    with expect_code(Code.META_NO_XATTR):
        setx(fs, "f", b"user.x", b"v", XattrFlags.REPLACE)
    setx(fs, "f", b"user.x", b"v", XattrFlags.CREATE)
    with expect_code(Code.META_EXISTS):
        setx(fs, "f", b"user.x", b"w", XattrFlags.CREATE)
    setx(fs, "f", b"user.x", b"w", XattrFlags.REPLACE)
    assert getx(fs, "f", b"user.x") == b"w"
    with expect_code(Code.INVALID_ARG):
        setx(fs, "f", b"user.x", b"w", XattrFlags.CREATE | XattrFlags.REPLACE)
    with expect_code(Code.INVALID_ARG):
        setx(fs, "f", b"user.x", b"w", 8)


def test_limits(mem_fs: MetaFs) -> None:
    fs = mem_fs
    fs.create("f")
    name = b"user." + b"n" * (255 - 5)
    setx(fs, "f", name, b"v" * (64 << 10))
    assert len(getx(fs, "f", name)) == 64 << 10
    with expect_code(Code.META_XATTR_NAME_INVALID):
        setx(fs, "f", name + b"n", b"v")
    with expect_code(Code.META_XATTR_TOO_LARGE):
        setx(fs, "f", b"user.big", b"v" * ((64 << 10) + 1))
    for bad in (b"", b"user.", b"user.\x00x"):
        with expect_code(Code.META_XATTR_NAME_INVALID):
            setx(fs, "f", bad, b"v")
    for unsupported in (b"system.posix_acl_access", b"other.x", b"noprefix"):
        with expect_code(Code.META_XATTR_UNSUPPORTED):
            getx(fs, "f", unsupported)
    # the names of one inode, each with its NUL, fit in 64 KiB
    for i in range(255):
        setx(fs, "f", b"user.%03d" % i + b"x" * 246, b"")
    # 255 names of 255 bytes (+ NUL each) and the first one: 65,281 bytes; 256 more pass 64 KiB
    with expect_code(Code.META_NO_SPACE):
        setx(fs, "f", (b"user.one-more" + b"x" * 255)[:255], b"")
    setx(fs, "f", b"user.fits" + b"x" * 200, b"")
    assert getx(fs, "f", name) == b"v" * (64 << 10)


def test_user_namespace_permissions(mem_fs: MetaFs) -> None:
    fs = mem_fs
    fs.create("private", 0o600)
    fs.create("readable", 0o644)
    setx(fs, "private", b"user.k", b"v")
    setx(fs, "readable", b"user.k", b"v")
    bob = fs.as_user(1000)
    with expect_code(Code.META_PERMISSION_DENIED):
        getx(bob, "private", b"user.k")
    assert getx(bob, "readable", b"user.k") == b"v"
    assert listx(bob, "private") == [b"user.k"]  # listing needs no permission on the inode
    with expect_code(Code.META_PERMISSION_DENIED):
        setx(bob, "readable", b"user.k", b"w")
    with expect_code(Code.META_PERMISSION_DENIED):
        rmx(bob, "readable", b"user.k")
    fs.create("shared", 0o666)
    setx(bob, "shared", b"user.mine", b"1")
    assert getx(fs, "shared", b"user.mine") == b"1"


def test_user_xattrs_only_on_files_and_directories(mem_fs: MetaFs) -> None:
    fs = mem_fs
    fs.create("target")
    fs.symlink("target", "link")
    fs.mknod("fifo", InodeType.FIFO, 0o666)
    fs.mkdir("d")
    setx(fs, "d", b"user.k", b"dir")
    assert getx(fs, "d", b"user.k") == b"dir"
    with expect_code(Code.META_NOT_PERMITTED):
        setx(fs, "fifo", b"user.k", b"v")
    with expect_code(Code.META_NOT_PERMITTED):
        setx(fs, "link", b"user.k", b"v", follow=False)
    with expect_code(Code.META_NO_XATTR):
        getx(fs, "link", b"user.k", follow=False)
    setx(fs, "link", b"user.k", b"through")  # followed: the target's
    assert getx(fs, "target", b"user.k") == b"through"


def test_sticky_directory_needs_owner(mem_fs: MetaFs) -> None:
    fs = mem_fs
    fs.mkdir("tmp", 0o1777)
    with expect_code(Code.META_NOT_PERMITTED):
        setx(fs.as_user(1000), "tmp", b"user.k", b"v")
    setx(fs, "tmp", b"user.k", b"v")


def test_trusted_and_security(mem_fs: MetaFs) -> None:
    fs = mem_fs
    fs.create("f", 0o666)
    setx(fs, "f", b"trusted.t", b"T")
    setx(fs, "f", b"security.s", b"S")
    setx(fs, "f", b"user.u", b"U")
    bob = fs.as_user(1000)
    plain_root = fs.as_user(0)  # uid 0 without the admin flag is an ordinary user
    for user in (bob, plain_root):
        with expect_code(Code.META_NOT_PERMITTED):
            setx(user, "f", b"trusted.x", b"v")
        with expect_code(Code.META_NOT_PERMITTED):
            setx(user, "f", b"security.x", b"v")
        with expect_code(Code.META_NO_XATTR):
            getx(user, "f", b"trusted.t")
        with expect_code(Code.META_NOT_PERMITTED):
            rmx(user, "f", b"security.s")
        assert getx(user, "f", b"security.s") == b"S"
        assert listx(user, "f") == [b"security.s", b"user.u"]
    assert listx(fs, "f") == [b"security.s", b"trusted.t", b"user.u"]
    assert getx(fs, "f", b"trusted.t") == b"T"


def test_inode_addressing(mem_fs: MetaFs) -> None:
    """An empty path names the inode itself whatever its type (as the FUSE mount calls)."""
    fs = mem_fs
    inode = fs.create("f")
    setx(fs, PathAt(inode.id, b""), b"user.k", b"v")
    assert getx(fs, "f", b"user.k") == b"v"
    assert fs.stat(PathAt(inode.id, b"")).id == inode.id
    with expect_code(Code.META_NOT_FOUND):
        getx(fs, PathAt(inode.id + 12345, b""), b"user.k")


@pytest.mark.parametrize("how", ["unlink", "rmdir"])
def test_removed_inode_takes_its_xattrs(local_fs: MetaFs, how: str) -> None:
    fs = local_fs
    inode = fs.mkdir("x") if how == "rmdir" else fs.mknod("x", InodeType.FILE)  # no write session
    setx(fs, "x", b"user.a", b"1")
    setx(fs, "x", b"trusted.b", b"2")
    request = wire.RemoveRequest(
        at=at("x"), directory=how == "rmdir", request=fs.request_id(), caller=fs.caller
    )
    fs.call(remove, request)
    prefix = keys.xattr_prefix(inode.id)
    assert not [key for key in fs.snapshot() if key.startswith(prefix)]


def test_hard_link_keeps_xattrs_until_last_link(mem_fs: MetaFs) -> None:
    fs = mem_fs
    fs.create("a")
    fs.link("a", "b")
    setx(fs, "a", b"user.k", b"v")
    fs.call(remove, wire.RemoveRequest(at=at("a"), request=fs.request_id(), caller=fs.caller))
    assert getx(fs, "b", b"user.k") == b"v"


def test_retried_set_gets_first_answer(mem_fs: MetaFs) -> None:
    fs = mem_fs
    fs.create("f")
    request = wire.SetXattrRequest(
        at=at("f"),
        name=b"user.k",
        value=b"v",
        flags=XattrFlags.CREATE,
        request=fs.request_id(),
        caller=fs.caller,
    )
    first = fs.call(set_xattr, request)
    again = fs.call(set_xattr, request)  # a retry after a lost reply: not META_EXISTS
    assert again == first
