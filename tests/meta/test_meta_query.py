"""Operations that read or describe: stat/lookup/batch stat, paged listing, get real path,
statfs; set-layout, layout inheritance and the placement of a new file's chunks; the root."""

from __future__ import annotations

from meta_fs import TEST_LAYOUT, MetaFs, expect_code

from meta.store.alloc import BLOCK_SIZE
from meta.store.root import ensure_root
from threefs.errors import Code
from threefs.kv.retry import run_transaction
from threefs.layout import Layout, stripe_positions, table_position
from threefs.wire.meta import ROOT_INODE, InodeType, PathAt


def test_root_is_created_once(fs):
    root = fs.stat("/")
    assert (root.id, root.type, root.parent, root.nlink, root.mode, root.dir_layout) == (
        ROOT_INODE, InodeType.DIRECTORY, ROOT_INODE, 2, 0o755, TEST_LAYOUT,
    )  # fmt: skip
    other = Layout(table_id=9, table_version=9)
    again = run_transaction(fs.env.engine, lambda txn: ensure_root(txn, 5, other, uid=7, mode=0o700))
    assert again == root == fs.stat("/")


def test_stat_lookup_and_batch_stat(fs):
    d = fs.mkdir("/d")
    f = fs.create("/d/f")
    fs.symlink("f", "/d/l")
    assert fs.lookup(d.id, "f") == f
    assert fs.lookup(d.id, "l").type == InodeType.SYMLINK  # lookup never follows
    assert fs.lookup(d.id, "..").id == ROOT_INODE
    assert fs.lookup(d.id, ".").id == d.id
    with expect_code(Code.META_NOT_FOUND):
        fs.lookup(d.id, "missing")
    with expect_code(Code.META_NOT_DIRECTORY):
        fs.lookup(f.id, "x")
    with expect_code(Code.META_NOT_FOUND):
        fs.lookup(424242, "x")
    assert fs.stat("/d/l") == f and fs.stat("/d/l", follow=False).target == b"f"
    d = fs.stat("/d")
    batch = fs.batch_stat(inodes=[f.id, 424242, d.id], paths=["/d/l", "/d/missing", "/d/f/x"])
    assert batch.inodes == [f, None, d, f, None, None]
    assert batch.codes == [0, Code.META_NOT_FOUND, 0, 0, Code.META_NOT_FOUND, Code.META_NOT_DIRECTORY]


def test_batch_stat_checks_search_permission_per_path(fs):
    fs.mkdir("/private", 0o700)
    f = fs.create("/private/f")
    user = fs.as_user(1000)
    batch = user.batch_stat(inodes=[f.id], paths=["/private/f", "/private"])
    assert batch.codes == [0, Code.META_PERMISSION_DENIED, 0]


def test_paged_listing(fs):
    fs.mkdir("/d")
    names = sorted(f"n{i:03d}".encode() for i in range(25))
    for name in reversed(names):
        fs.create(b"/d/" + name)
    fs.mkdir("/d/zsub")
    page = fs.ls("/d", limit=10)
    assert [e.name for e in page.entries] == names[:10] and page.more
    assert all(e.attrs is None and e.type == InodeType.FILE for e in page.entries)
    page = fs.ls("/d", after=names[9], limit=10)
    assert [e.name for e in page.entries] == names[10:20] and page.more
    page = fs.ls("/d", after=names[19], limit=10)
    assert [e.name for e in page.entries] == [*names[20:], b"zsub"] and not page.more
    assert page.entries[-1].type == InodeType.DIRECTORY
    page = fs.ls("/d", after=b"n0125", limit=3)  # "after" need not be an existing name
    assert [e.name for e in page.entries] == [b"n013", b"n014", b"n015"]
    assert fs.ls("/d", after=b"zsub").entries == []
    assert fs.names("/d", limit=7) == [*names, b"zsub"]
    page = fs.ls("/d", limit=2, with_attrs=True)
    assert [e.attrs for e in page.entries] == [fs.stat(b"/d/" + n) for n in names[:2]]
    assert [e.inode for e in page.entries] == [e.attrs.id for e in page.entries]
    assert fs.ls("/").entries[0].name == b"d"


def test_listing_errors_and_permissions(fs):
    fs.mkdir("/d")
    fs.create("/d/f")
    fs.symlink("d", "/ld")
    assert [e.name for e in fs.ls("/ld").entries] == [b"f"]  # a symlink to a directory is followed
    with expect_code(Code.META_NOT_DIRECTORY):
        fs.ls("/d/f")
    with expect_code(Code.META_NOT_FOUND):
        fs.ls("/nope")
    fs.mkdir("/ronly", 0o744)  # others: r but not x
    fs.create("/ronly/f")
    fs.mkdir("/xonly", 0o711)  # others: x but not r
    user = fs.as_user(1000)
    assert [e.name for e in user.ls("/ronly").entries] == [b"f"]
    with expect_code(Code.META_PERMISSION_DENIED):
        user.ls("/ronly", with_attrs=True)
    with expect_code(Code.META_PERMISSION_DENIED):
        user.ls("/xonly")


def test_real_path(fs):
    fs.mkdir("/a/b/c", recursive=True)
    fs.create("/a/b/f")
    fs.symlink("/a/b", "/short")
    fs.symlink("f", "/a/b/lf")
    fs.link("/a/b/f", "/a/hard")
    c = fs.stat("/a/b/c")
    assert fs.real_path("/") == b"/"
    assert fs.real_path("/a/b/c") == b"/a/b/c"
    assert fs.real_path("", parent=c.id) == b"/a/b/c"
    assert fs.real_path("../..", parent=c.id) == b"/a"
    assert fs.real_path("/short/c/.") == b"/a/b/c"
    assert fs.real_path("/short/f") == b"/a/b/f"
    assert fs.real_path("/short/lf") == b"/a/b/f"  # a final symlink is resolved too
    assert fs.real_path("/a/hard") == b"/a/hard"  # the link the request used
    with expect_code(Code.META_NOT_FOUND):
        fs.real_path("/a/nope")


def test_statfs(fs):
    response = fs.statfs(capacity_bytes=1000, used_bytes=300, free_bytes=700)
    assert (response.capacity_bytes, response.used_bytes, response.free_bytes) == (1000, 300, 700)
    fs.create("/f")
    used = fs.statfs().inodes_used
    assert used >= 2 and used % BLOCK_SIZE == 0
    assert response.max_name_bytes == 255


def test_set_layout(fs):
    fs.mkdir("/d")
    fs.create("/d/old")
    fs.mkdir("/d/oldsub")
    wide = Layout(table_id=2, table_version=3, chunk_size=4 << 20, stripe_size=8, base_index=5, seed=99)
    d = fs.set_layout("/d", wide)
    assert d.dir_layout == Layout(
        table_id=2, table_version=3, chunk_size=4 << 20, stripe_size=8, base_index=5
    )
    assert fs.stat("/d").dir_layout == d.dir_layout
    new = fs.create("/d/new")
    assert new.layout == Layout(table_id=2, table_version=3, chunk_size=4 << 20, stripe_size=8, base_index=5,
                                seed=new.id)  # fmt: skip
    assert fs.stat("/d/old").layout.table_id == 1  # existing files keep their layout
    assert fs.stat("/d/oldsub").dir_layout == TEST_LAYOUT  # and existing subdirectories theirs
    assert fs.mkdir("/d/newsub").dir_layout == d.dir_layout  # new ones copy the parent's
    assert fs.create("/d/newsub/f").layout.table_id == 2
    fs.create("/d/file")
    with expect_code(Code.META_NOT_DIRECTORY):
        fs.set_layout("/d/file", wide)
    with expect_code(Code.META_NOT_FOUND):
        fs.set_layout("/nope", wide)


def test_set_layout_needs_the_owner_or_admin_root(fs):
    fs.mkdir("/pub", 0o777)
    owner = fs.as_user(1000)
    owner.mkdir("/pub/mine")
    wide = Layout(table_id=2, table_version=1, stripe_size=2)
    assert owner.set_layout("/pub/mine", wide).dir_layout.table_id == 2
    with expect_code(Code.META_NOT_PERMITTED):
        fs.as_user(2000).set_layout("/pub/mine", wide)
    with expect_code(Code.META_NOT_PERMITTED):
        fs.as_user(0, admin=False).set_layout("/pub/mine", wide)
    assert fs.set_layout("/pub/mine", TEST_LAYOUT).dir_layout == TEST_LAYOUT


class _FixedIds:
    """An allocator handing out known ids, so placement tests pin exact chains."""

    def __init__(self, ids: list[int]) -> None:
        self._ids = list(ids)

    def reserve(self, count: int) -> None:
        pass

    def allocate(self) -> int:
        return self._ids.pop(0)


def test_a_new_files_seed_is_its_inode_id_and_pins_its_placement(make_meta_env):
    env = make_meta_env("mem")
    env.allocator = _FixedIds([5000, 5001, 123456789, 200000])
    fs = MetaFs(env)
    layout = Layout(table_id=1, table_version=1, stripe_size=4, base_index=6)
    fs.set_layout("/", layout)
    first, second, third = fs.create("/a"), fs.create("/b"), fs.create("/c")
    assert [f.id for f in (first, second, third)] == [5000, 5001, 123456789]
    assert [f.layout.seed for f in (first, second, third)] == [5000, 5001, 123456789]
    # golden values of the documented SplitMix64 Fisher-Yates shuffle (threefs/layout.py), in a
    # table of 10 chains: slots start at base 6 and wrap around
    assert stripe_positions(first.layout, 10) == [9, 6, 7, 8]
    assert stripe_positions(second.layout, 10) == [7, 6, 8, 9]
    assert stripe_positions(third.layout, 10) == [8, 9, 6, 7]
    assert [table_position(first.layout, i, 10) for i in range(6)] == [9, 6, 7, 8, 9, 6]
    # the same file through a hard link or a path with symlinks has the same placement
    fs.symlink("/", "/root")
    assert fs.stat(PathAt(ROOT_INODE, b"/root/a")).layout == first.layout
