"""Extended attributes through a real mount: os.setxattr/getxattr/listxattr/removexattr with
XATTR_CREATE/REPLACE and Linux's limits and errors."""

from __future__ import annotations

import errno
import os

import pytest

pytestmark = pytest.mark.slow


def test_xattr_roundtrip_and_flags(mounted) -> None:
    path = os.path.join(mounted.path, "f")
    open(path, "wb").close()
    os.setxattr(path, "user.colour", b"blue")
    os.setxattr(path, "user.empty", b"")
    assert os.getxattr(path, "user.colour") == b"blue"
    assert os.getxattr(path, "user.empty") == b""
    assert sorted(os.listxattr(path)) == ["user.colour", "user.empty"]
    with pytest.raises(FileExistsError):
        os.setxattr(path, "user.colour", b"red", os.XATTR_CREATE)
    with pytest.raises(OSError) as info:
        os.setxattr(path, "user.nothing", b"x", os.XATTR_REPLACE)
    assert info.value.errno == errno.ENODATA
    os.setxattr(path, "user.colour", b"red", os.XATTR_REPLACE)
    assert os.getxattr(path, "user.colour") == b"red"
    os.removexattr(path, "user.colour")
    assert os.listxattr(path) == ["user.empty"]
    with pytest.raises(OSError) as info:
        os.getxattr(path, "user.colour")
    assert info.value.errno == errno.ENODATA
    with pytest.raises(OSError) as info:
        os.removexattr(path, "user.colour")
    assert info.value.errno == errno.ENODATA


def test_xattr_limits(mounted) -> None:
    path = os.path.join(mounted.path, "f")
    open(path, "wb").close()
    big = os.urandom(64 << 10)
    os.setxattr(path, "user.big", big)
    assert os.getxattr(path, "user.big") == big
    with pytest.raises(OSError) as info:
        os.setxattr(path, "user.toobig", big + b"x")
    assert info.value.errno == errno.E2BIG
    with pytest.raises(OSError) as info:
        os.setxattr(path, "user." + "n" * 251, b"x")
    assert info.value.errno == errno.ERANGE
    with pytest.raises(OSError) as info:
        os.setxattr(path, "system.threefs", b"x")
    assert info.value.errno == errno.EOPNOTSUPP


def test_xattr_on_directory_and_symlink(mounted) -> None:
    directory = os.path.join(mounted.path, "d")
    os.mkdir(directory)
    os.setxattr(directory, "user.k", b"dir")
    assert os.getxattr(directory, "user.k") == b"dir"
    os.symlink("d", os.path.join(mounted.path, "link"))
    assert os.getxattr(os.path.join(mounted.path, "link"), "user.k") == b"dir"  # followed
    with pytest.raises(PermissionError):
        os.setxattr(os.path.join(mounted.path, "link"), "user.k", b"v", follow_symlinks=False)


def test_trusted_namespace_as_root(mounted) -> None:
    path = os.path.join(mounted.path, "f")
    open(path, "wb").close()
    os.setxattr(path, "trusted.t", b"T")
    os.setxattr(path, "security.s", b"S")
    assert os.getxattr(path, "trusted.t") == b"T"
    assert sorted(os.listxattr(path)) == ["security.s", "trusted.t"]


def test_xattrs_go_with_the_file(mounted) -> None:
    path = os.path.join(mounted.path, "f")
    open(path, "wb").close()
    os.setxattr(path, "user.k", b"v")
    os.unlink(path)
    open(path, "wb").close()
    assert os.listxattr(path) == []
