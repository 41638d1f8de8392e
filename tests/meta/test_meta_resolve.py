"""Path resolution (meta/components/resolve.py), permission rules (permissions.py) and the
name/path limits, through the stat/lookup/mkdir ops."""

from __future__ import annotations

import pytest
from meta_fs import expect_code

from meta.components import permissions
from meta.components.resolve import is_ancestor, resolve_parent
from meta.ops.context import execute_op
from threefs.errors import Code
from threefs.wire.meta import MAX_SYMLINK_FOLLOWS, ROOT_INODE, Caller, Inode, InodeType, PathAt


def _inode(mode: int, uid: int = 100, gid: int = 200, type: InodeType = InodeType.FILE) -> Inode:
    return Inode(id=5000, type=type, mode=mode, uid=uid, gid=gid, nlink=1, atime_ns=0, mtime_ns=0, ctime_ns=0)


OWNER = Caller(uid=100, gid=1)
MEMBER = Caller(uid=101, gid=7, groups=[200])
OTHER = Caller(uid=102, gid=7)


@pytest.mark.parametrize(
    ("caller", "mode", "want", "allowed"),
    [
        (OWNER, 0o700, permissions.R | permissions.W | permissions.X, True),
        (OWNER, 0o070, permissions.R, False),  # owner bits win even when group bits allow
        (MEMBER, 0o070, permissions.R | permissions.W, True),
        (MEMBER, 0o707, permissions.R, False),
        (OTHER, 0o004, permissions.R, True),
        (OTHER, 0o004, permissions.W, False),
        (Caller(uid=0), 0o000, permissions.R, False),  # uid 0 without admin is nobody special
        (Caller(uid=0, admin=True), 0o000, permissions.R | permissions.W, True),
        (Caller(uid=0, admin=True), 0o600, permissions.X, False),  # no x bit at all on a file
        (Caller(uid=0, admin=True), 0o010, permissions.X, True),
        (Caller(uid=5, admin=True), 0o000, permissions.R, False),  # admin but not uid 0
    ],
)
def test_may_follows_owner_group_other_and_root_only_with_admin(caller, mode, want, allowed):
    assert permissions.may(_inode(mode), caller, want) is allowed


def test_admin_root_searches_a_directory_without_x_bits():
    directory = _inode(0o000, type=InodeType.DIRECTORY)
    assert permissions.may(directory, Caller(uid=0, admin=True), permissions.X)


def test_check_sticky_and_check_owner():
    sticky = _inode(0o1777, uid=1, type=InodeType.DIRECTORY)
    victim = _inode(0o644, uid=100)
    permissions.check_sticky(sticky, victim, OWNER)  # owns the victim
    permissions.check_sticky(sticky, victim, Caller(uid=1))  # owns the directory
    permissions.check_sticky(sticky, victim, Caller(uid=0, admin=True))
    with expect_code(Code.META_NOT_PERMITTED):
        permissions.check_sticky(sticky, victim, OTHER)
    permissions.check_sticky(_inode(0o777, uid=1, type=InodeType.DIRECTORY), victim, OTHER)
    permissions.check_owner(victim, OWNER)
    permissions.check_owner(victim, Caller(uid=0, admin=True))
    with expect_code(Code.META_NOT_PERMITTED):
        permissions.check_owner(victim, Caller(uid=0))
    with expect_code(Code.META_PERMISSION_DENIED):
        permissions.check(victim, OTHER, permissions.W)


def test_paths_resolve_through_dot_dotdot_slashes_and_relative_parents(fs):
    a = fs.mkdir("/a")
    b = fs.mkdir("/a/b")
    f = fs.create("/a/b/f")
    assert fs.stat("/a/b/f").id == f.id
    assert fs.stat("//a///b/./f").id == f.id
    assert fs.stat("/a/b/../b/f").id == f.id
    assert fs.stat("/..").id == ROOT_INODE  # the root's parent is itself
    assert fs.stat("/a/b/..").id == a.id
    assert fs.stat("b/f", parent=a.id).id == f.id
    assert fs.stat("", parent=b.id).id == b.id
    assert fs.stat("/a/b/", parent=b.id).id == b.id  # absolute ignores the parent
    assert fs.stat("/", parent=b.id).id == ROOT_INODE
    assert fs.stat("/a/b").parent == a.id and fs.stat("/a/b").name == b"b"


def test_resolution_errors(fs):
    fs.mkdir("/d")
    fs.create("/d/f")
    with expect_code(Code.META_NOT_FOUND):
        fs.stat("/d/missing")
    with expect_code(Code.META_NOT_FOUND):
        fs.stat("/missing/f")
    with expect_code(Code.META_NOT_DIRECTORY):
        fs.stat("/d/f/x")
    with expect_code(Code.META_NOT_DIRECTORY):
        fs.stat("/d/f/")  # a trailing slash asks for a directory
    with expect_code(Code.META_NOT_DIRECTORY):
        fs.stat("x", parent=fs.stat("/d/f").id)
    with expect_code(Code.META_NOT_FOUND):
        fs.stat("x", parent=987654)


def test_names_and_paths_over_the_limits(local_fs):
    fs = local_fs
    with expect_code(Code.META_NAME_TOO_LONG):
        fs.stat(b"/" + b"n" * 256)
    with expect_code(Code.META_NAME_TOO_LONG):
        fs.mkdir(b"/" + b"n" * 256)
    fs.mkdir(b"/" + b"n" * 255)
    with expect_code(Code.META_PATH_TOO_LONG):
        fs.stat(b"/a" * 2049)
    with expect_code(Code.META_PATH_TOO_LONG):
        fs.mkdir(b"/a" * 2049, recursive=True)
    with expect_code(Code.META_INVALID_NAME):
        fs.mkdir(b"/bad\x00name")
    with expect_code(Code.META_NAME_TOO_LONG):
        fs.lookup(ROOT_INODE, b"n" * 256)
    with expect_code(Code.META_INVALID_NAME):
        fs.lookup(ROOT_INODE, b"a/b")
    with expect_code(Code.META_INVALID_NAME):
        fs.lookup(ROOT_INODE, b"")


def test_symlinks_in_the_middle_of_a_path_are_followed(fs):
    fs.mkdir("/real/sub", recursive=True)
    f = fs.create("/real/sub/f")
    fs.symlink("real", "/rel")  # relative: from the link's directory
    fs.symlink("/real/sub", "/real/abs")  # absolute: from the root
    fs.symlink("../../real", "/real/sub/up")
    fs.symlink("rel", "/chain")  # a chain of two
    assert fs.stat("/rel/sub/f").id == f.id
    assert fs.stat("/real/abs/f").id == f.id
    assert fs.stat("/real/sub/up/sub/f").id == f.id
    assert fs.stat("/chain/sub/f").id == f.id
    link = fs.stat("/chain", follow=False)
    assert link.type == InodeType.SYMLINK and link.target == b"rel"
    assert fs.stat("/chain").type == InodeType.DIRECTORY
    assert fs.stat("/chain/").type == InodeType.DIRECTORY  # trailing slash follows


def test_symlink_loops_and_the_follow_limit(local_fs):
    fs = local_fs
    fs.symlink("loop2", "/loop1")
    fs.symlink("loop1", "/loop2")
    with expect_code(Code.META_LOOP):
        fs.stat("/loop1")
    with expect_code(Code.META_LOOP):
        fs.stat("/loop1/x")
    assert fs.stat("/loop1", follow=False).type == InodeType.SYMLINK
    # a chain of exactly MAX_SYMLINK_FOLLOWS links resolves; one more is a loop
    fs.mkdir("/end")
    previous = "end"
    for index in range(MAX_SYMLINK_FOLLOWS + 1):
        fs.symlink(previous, f"/l{index}")
        previous = f"l{index}"
    assert fs.stat(f"/l{MAX_SYMLINK_FOLLOWS - 1}").type == InodeType.DIRECTORY
    with expect_code(Code.META_LOOP):
        fs.stat(f"/l{MAX_SYMLINK_FOLLOWS}")
    fs.symlink("missing", "/dangling")
    with expect_code(Code.META_NOT_FOUND):
        fs.stat("/dangling")


def test_search_permission_is_needed_on_every_component(fs):
    fs.mkdir("/top", 0o755)
    fs.mkdir("/top/mid", 0o700)  # owned by root: others may not search it
    fs.mkdir("/top/mid/low", 0o777)
    fs.create("/top/mid/low/f", 0o666)
    user = fs.as_user(1000)
    assert user.stat("/top").id
    assert user.stat("/top/mid").id  # stat of mid itself needs x on /top only
    for path in ("/top/mid/low", "/top/mid/low/f", "/top/mid/low/../low"):
        with expect_code(Code.META_PERMISSION_DENIED):
            user.stat(path)
    with expect_code(Code.META_PERMISSION_DENIED):
        user.lookup(fs.stat("/top/mid").id, "low")
    # group search permission counts for members only
    fs.mkdir("/grp", 0o710)
    fs.create("/grp/f")
    with expect_code(Code.META_PERMISSION_DENIED):
        fs.as_user(1000, 1000).stat("/grp/f")
    assert fs.as_user(1000, 1000, groups=(0,)).stat("/grp/f").type == InodeType.FILE
    # uid 0 is root only with admin
    fs.mkdir("/closed", 0o000)
    fs.mkdir("/closed/x")  # admin root passes any search check
    with expect_code(Code.META_PERMISSION_DENIED):
        fs.as_user(0, 0, admin=False).stat("/closed/x")
    assert fs.as_user(0, 0, admin=True).stat("/closed/x").type == InodeType.DIRECTORY


def test_resolve_parent_and_is_ancestor(mem_fs):
    fs = mem_fs
    a = fs.mkdir("/a")
    b = fs.mkdir("/a/b")
    c = fs.mkdir("/a/b/c")
    f = fs.create("/a/b/f")

    def run(fn):
        return execute_op(fs.env, fn, caller=fs.caller)

    resolved = run(lambda ctx: resolve_parent(ctx, PathAt(ROOT_INODE, b"/a/b/f")))
    assert (resolved.parent.id, resolved.name, resolved.entry.inode, resolved.inode.id) == (
        b.id,
        b"f",
        f.id,
        f.id,
    )
    resolved = run(lambda ctx: resolve_parent(ctx, PathAt(ROOT_INODE, b"/a/new/")))
    assert (resolved.parent.id, resolved.entry, resolved.inode, resolved.trailing_slash) == (
        a.id,
        None,
        None,
        True,
    )
    for path in (b"/", b"", b"/a/.", b"/a/.."):
        with expect_code(Code.META_EXISTS):
            run(
                lambda ctx, path=path: resolve_parent(
                    ctx, PathAt(ROOT_INODE, path), dot_code=Code.META_EXISTS
                )
            )
    with expect_code(Code.META_INVALID_NAME):
        run(lambda ctx: resolve_parent(ctx, PathAt(ROOT_INODE, b"/a/.")))
    with expect_code(Code.META_NOT_FOUND):  # the prefix is resolved before the dot is judged
        run(lambda ctx: resolve_parent(ctx, PathAt(ROOT_INODE, b"/nope/."), dot_code=Code.META_EXISTS))
    assert run(lambda ctx: is_ancestor(ctx, a.id, c.id))
    assert run(lambda ctx: is_ancestor(ctx, ROOT_INODE, c.id))
    assert run(lambda ctx: is_ancestor(ctx, c.id, c.id))  # a directory is in its own subtree
    assert not run(lambda ctx: is_ancestor(ctx, c.id, a.id))
    x = fs.mkdir("/x")
    assert not run(lambda ctx: is_ancestor(ctx, b.id, x.id))
