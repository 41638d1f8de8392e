"""Operations that create: mkdir (and -p), mknod, create/open, symlink/readlink, hard link;
their POSIX errors, ownership rules, parent time stamps, and idempotency by request id."""

from __future__ import annotations

import pytest
from meta_fs import RW_CREATE, TEST_LAYOUT, expect_code

from meta.store import records
from threefs.errors import Code
from threefs.kv.retry import run_transaction
from threefs.wire.meta import MAX_LINKS, ROOT_INODE, InodeType, OpenFlags

R, W, C, X, T, A = (OpenFlags.READ, OpenFlags.WRITE, OpenFlags.CREATE, OpenFlags.EXCLUSIVE,
                    OpenFlags.TRUNCATE, OpenFlags.APPEND)  # fmt: skip


def refused(fs, code, fn, *args, **kwargs):
    """``fn`` raises ``code`` and leaves every key as it was."""
    before = fs.snapshot()
    with expect_code(code):
        fn(*args, **kwargs)
    assert fs.snapshot() == before


def sessions(fs, inode_id):
    return run_transaction(fs.env.engine, lambda txn: records.list_sessions(txn, inode_id))


def test_mkdir_links_times_and_layout(fs):
    root = fs.stat("/")
    d = fs.mkdir("/d", 0o750)
    assert (d.type, d.mode, d.uid, d.gid, d.nlink, d.parent, d.name) == (
        InodeType.DIRECTORY,
        0o750,
        0,
        0,
        2,
        1,
        b"d",
    )
    assert d.dir_layout == TEST_LAYOUT
    after = fs.stat("/")
    assert after.nlink == root.nlink + 1
    assert after.mtime_ns == after.ctime_ns == d.ctime_ns > root.mtime_ns
    assert fs.names("/") == [b"d"]
    sub = fs.mkdir("/d/sub")
    assert fs.stat("/d").nlink == 3 and sub.parent == d.id


def test_mkdir_errors_change_nothing(fs):
    fs.mkdir("/d")
    fs.create("/d/f")
    refused(fs, Code.META_EXISTS, fs.mkdir, "/d")
    refused(fs, Code.META_EXISTS, fs.mkdir, "/d/f")
    refused(fs, Code.META_EXISTS, fs.mkdir, "/")
    refused(fs, Code.META_EXISTS, fs.mkdir, "/d/.")
    refused(fs, Code.META_EXISTS, fs.mkdir, "/d/..")
    refused(fs, Code.META_NOT_FOUND, fs.mkdir, "/missing/x")
    refused(fs, Code.META_NOT_DIRECTORY, fs.mkdir, "/d/f/x")
    refused(fs, Code.META_NAME_TOO_LONG, fs.mkdir, b"/d/" + b"x" * 256)
    refused(fs, Code.META_PERMISSION_DENIED, fs.as_user(1000).mkdir, "/d/x")
    refused(fs, Code.META_EXISTS, fs.as_user(1000).mkdir, "/d/f")  # EEXIST before EACCES


def test_mkdir_recursive(fs):
    fs.mkdir("/a")
    c = fs.mkdir("/a/b/c", 0o700, recursive=True)
    assert fs.stat("/a/b/c").id == c.id and c.mode == 0o700
    assert fs.stat("/a/b").mode == 0o700 | 0o300  # intermediate ones stay writable/searchable
    assert fs.mkdir("/a/b/c", recursive=True).id == c.id  # an existing directory is fine
    assert fs.mkdir("/a/./b/../b/c/", recursive=True).id == c.id
    assert fs.mkdir("/", recursive=True).id == ROOT_INODE
    fs.symlink("/a/b", "/link")
    assert fs.mkdir("/link/c/d", recursive=True).parent == c.id
    fs.create("/a/file")
    refused(fs, Code.META_EXISTS, fs.mkdir, "/a/file", recursive=True)
    refused(fs, Code.META_NOT_DIRECTORY, fs.mkdir, "/a/file/x/y", recursive=True)
    fs.mkdir("/locked", 0o755)
    refused(fs, Code.META_PERMISSION_DENIED, fs.as_user(1000).mkdir, "/locked/x/y", recursive=True)
    deep = "/" + "/".join(f"d{i}" for i in range(60))
    leaf = fs.mkdir(deep, recursive=True)
    assert fs.stat(deep).id == leaf.id and fs.real_path(deep) == deep.encode()


def test_setgid_directories_pass_on_their_group(fs):
    shared = fs.mkdir("/shared", 0o2777)
    fs.set_layout("/shared", TEST_LAYOUT)
    fs.patch_inode(shared, gid=500)
    user = fs.as_user(1000, 1000)
    sub = user.mkdir("/shared/sub", 0o755)
    assert (sub.gid, sub.mode) == (500, 0o2755)  # gid and the setgid bit
    f = user.create("/shared/f", 0o2755)
    assert (f.gid, f.mode) == (500, 0o755)  # not in group 500: setgid dropped from a file
    member = fs.as_user(1001, 1001, groups=(500,))
    assert member.create("/shared/g", 0o2755).mode == 0o2755
    fs.mkdir("/open", 0o777)
    assert user.create("/open/h").gid == 1000  # no setgid: the caller's gid


def test_mknod_types(fs):
    fifo = fs.mknod("/fifo", InodeType.FIFO, 0o600)
    assert (fifo.type, fifo.mode, fifo.layout, fifo.nlink) == (InodeType.FIFO, 0o600, None, 1)
    sock = fs.mknod("/sock", InodeType.SOCKET)
    assert sock.type == InodeType.SOCKET
    plain = fs.mknod("/plain", InodeType.FILE)
    assert plain.layout is not None and plain.layout.seed == plain.id
    dev = fs.mknod("/dev", InodeType.CHAR_DEVICE, 0o600, rdev=(1 << 8) | 3)
    assert (dev.type, dev.rdev) == (InodeType.CHAR_DEVICE, 259)
    assert fs.mknod("/fifo2", InodeType.FIFO, rdev=7).rdev == 0  # rdev only for devices
    fs.mkdir("/open", 0o777)
    user = fs.as_user(1000)
    refused(fs, Code.META_NOT_PERMITTED, user.mknod, "/open/blk", InodeType.BLOCK_DEVICE)
    refused(fs, Code.INVALID_ARG, fs.mknod, "/x", InodeType.DIRECTORY)
    refused(fs, Code.INVALID_ARG, fs.mknod, "/x", InodeType.SYMLINK)
    refused(fs, Code.META_EXISTS, fs.mknod, "/fifo", InodeType.FIFO)
    refused(fs, Code.META_PERMISSION_DENIED, user.mknod, "/x", InodeType.FIFO)
    assert user.mknod("/open/fifo", InodeType.FIFO).uid == 1000


def test_create_and_open_flags(fs):
    opened = fs.open("/f", R | W | C, 0o640)
    f = opened.inode
    assert opened.created and len(opened.session_id) == 16
    assert (f.type, f.mode, f.length, f.truncate_version) == (InodeType.FILE, 0o640, 0, 0)
    assert [s.session_id for s in sessions(fs, f.id)] == [opened.session_id]
    again = fs.open("/f", R | W | C)
    assert not again.created and again.inode.id == f.id and again.session_id != opened.session_id
    read = fs.open("/f", R)
    assert read.session_id == b"" and not read.created
    assert len(sessions(fs, f.id)) == 2
    refused(fs, Code.META_EXISTS, fs.open, "/f", R | W | C | X)
    refused(fs, Code.META_NOT_FOUND, fs.open, "/missing", R)
    refused(fs, Code.META_NOT_FOUND, fs.open, "/no/such", R | C)
    refused(fs, Code.INVALID_ARG, fs.open, "/f", 1 << 10)
    fs.mkdir("/d")
    refused(fs, Code.META_IS_DIRECTORY, fs.open, "/d", R | W)
    refused(fs, Code.META_IS_DIRECTORY, fs.open, "/d", R | C)
    refused(fs, Code.META_IS_DIRECTORY, fs.open, "/d/.", R | C)
    refused(fs, Code.META_IS_DIRECTORY, fs.open, "/d/new/", R | W | C)
    assert fs.open("/d", R).inode.type == InodeType.DIRECTORY


def test_truncate_bumps_the_version(fs):
    f = fs.create("/f")
    fs.patch_inode(f, length=12345)
    truncated = fs.open("/f", W | T).inode
    assert (truncated.length, truncated.truncate_version) == (0, 1)
    assert truncated.mtime_ns > f.mtime_ns and fs.stat("/f") == truncated
    assert fs.open("/f", R).inode.truncate_version == 1  # no TRUNCATE: untouched
    created = fs.open("/g", R | W | C | T).inode
    assert created.truncate_version == 0  # a file just created needs no truncation


def test_open_permissions(fs):
    fs.mkdir("/pub", 0o777)
    owner = fs.as_user(1000, 1000)
    other = fs.as_user(2000, 2000)
    f = owner.create("/pub/f", 0o600)
    assert f.uid == 1000
    assert owner.open("/pub/f", R | W).inode.id == f.id
    for flags in (R, W, R | W, W | T, A | W, A):
        refused(fs, Code.META_PERMISSION_DENIED, other.open, "/pub/f", flags)
    ro = owner.create("/pub/ro", 0o444)  # created: opened whatever its mode
    assert ro.mode == 0o444
    refused(fs, Code.META_PERMISSION_DENIED, owner.open, "/pub/ro", R | W)
    assert fs.open("/pub/ro", R | W).inode.id == ro.id  # admin root
    refused(fs, Code.META_PERMISSION_DENIED, fs.as_user(0, admin=False).open, "/pub/ro", R | W)
    fs.mkdir("/ro-dir", 0o755)
    refused(fs, Code.META_PERMISSION_DENIED, owner.open, "/ro-dir/x", R | W | C)


def test_open_follows_symlinks_and_creates_dangling_targets(fs):
    f = fs.create("/target")
    fs.symlink("target", "/link")
    assert fs.open("/link", R).inode.id == f.id
    refused(fs, Code.META_LOOP, fs.open, "/link", R, follow=False)
    refused(fs, Code.META_EXISTS, fs.open, "/link", R | C | X)
    fs.mkdir("/d")
    fs.symlink("/d/made", "/dangling")
    made = fs.open("/dangling", R | W | C)
    assert made.created and fs.stat("/d/made").id == made.inode.id
    assert fs.open("/dangling", R | C).inode.id == made.inode.id


def test_create_needs_a_layout(make_meta_env):
    from meta_fs import MetaFs

    fs = MetaFs(make_meta_env("mem", layout=None))
    refused(fs, Code.META_BAD_LAYOUT, fs.create, "/f")
    assert fs.mknod("/fifo", InodeType.FIFO).layout is None  # only files need one
    fs.mkdir("/d")
    refused(fs, Code.META_BAD_LAYOUT, fs.create, "/d/f")
    fs.set_layout("/d", TEST_LAYOUT)
    assert fs.create("/d/f").layout.table_id == TEST_LAYOUT.table_id


def test_symlink_and_readlink(fs):
    fs.mkdir("/d")
    link = fs.symlink("../some/where", "/d/l")
    assert (link.type, link.mode, link.length, link.target) == (
        InodeType.SYMLINK,
        0o777,
        13,
        b"../some/where",
    )
    assert fs.readlink("/d/l") == b"../some/where"
    refused(fs, Code.INVALID_ARG, fs.readlink, "/d")
    refused(fs, Code.META_EXISTS, fs.symlink, "x", "/d/l")
    refused(fs, Code.META_EXISTS, fs.symlink, "x", "/d/.")
    refused(fs, Code.META_NOT_FOUND, fs.symlink, "", "/d/empty")
    refused(fs, Code.META_PATH_TOO_LONG, fs.symlink, b"x" * 4097, "/d/long")
    refused(fs, Code.META_PERMISSION_DENIED, fs.as_user(1000).symlink, "x", "/d/u")
    assert fs.symlink(b"y" * 4096, "/d/longest").length == 4096


def test_hard_link(fs):
    fs.mkdir("/a")
    fs.mkdir("/b")
    f = fs.create("/a/f")
    before = fs.stat("/b")
    linked = fs.link("/a/f", "/b/g")
    assert (linked.id, linked.nlink) == (f.id, 2) and linked.ctime_ns > f.ctime_ns
    assert fs.stat("/b/g") == fs.stat("/a/f") == linked
    assert fs.stat("/b").mtime_ns > before.mtime_ns
    fs.symlink("f", "/a/sym")
    assert fs.link("/a/sym", "/b/sym").type == InodeType.SYMLINK  # the link itself, not followed
    refused(fs, Code.META_NOT_PERMITTED, fs.link, "/a", "/b/dir")
    refused(fs, Code.META_EXISTS, fs.link, "/a/f", "/b/g")
    refused(fs, Code.META_EXISTS, fs.link, "/a/f", "/b/.")
    refused(fs, Code.META_NOT_FOUND, fs.link, "/a/missing", "/b/x")
    refused(fs, Code.META_PERMISSION_DENIED, fs.as_user(1000).link, "/a/f", "/b/x")


def test_hard_link_limit(mem_fs):
    fs = mem_fs
    f = fs.create("/f")
    fs.patch_inode(f, nlink=MAX_LINKS)
    refused(fs, Code.META_TOO_MANY_LINKS, fs.link, "/f", "/g")


def test_retried_requests_get_the_first_answer(fs):
    request = fs.request_id()
    first = fs.open("/f", RW_CREATE | X, request=request)
    before = fs.snapshot()
    again = fs.open("/f", RW_CREATE | X, request=request)  # not EEXIST: the recorded answer
    assert again == first and again.created
    assert fs.snapshot() == before  # and nothing changed (no second session)
    request = fs.request_id()
    d = fs.mkdir("/d", request=request)
    assert fs.mkdir("/d", request=request) == d
    request = fs.request_id()
    link = fs.link("/f", "/d/g", request=request)
    assert fs.link("/f", "/d/g", request=request) == link and fs.stat("/f").nlink == 2
    request = fs.request_id()
    fs.symlink("f", "/s", request=request)
    before = fs.snapshot()
    assert fs.symlink("f", "/s", request=request).target == b"f"
    assert fs.snapshot() == before
    # a failed request is not recorded: the same id may run again and succeed
    request = fs.request_id()
    with expect_code(Code.META_NOT_FOUND):
        fs.mkdir("/x/y", request=request)
    fs.mkdir("/x")
    assert fs.mkdir("/x/y", request=request).name == b"y"
    # another client's request with the same number is another request
    other = fs.as_user(0, admin=True)
    with expect_code(Code.META_EXISTS):
        other.mkdir("/d", request=type(request)(other.client_id, request.seq))


@pytest.mark.parametrize("kind", ["mem", "sqlite"])
def test_parent_times_move_on_every_create(make_meta_env, kind):
    from meta_fs import MetaFs

    fs = MetaFs(make_meta_env(kind))
    stamps = [fs.stat("/").mtime_ns]
    for make in (
        lambda: fs.mkdir("/d"),
        lambda: fs.create("/f"),
        lambda: fs.mknod("/p", InodeType.FIFO),
        lambda: fs.symlink("f", "/s"),
        lambda: fs.link("/f", "/h"),
    ):
        made = make()
        root = fs.stat("/")
        assert root.mtime_ns == root.ctime_ns > stamps[-1]
        assert root.mtime_ns >= made.ctime_ns
        stamps.append(root.mtime_ns)
