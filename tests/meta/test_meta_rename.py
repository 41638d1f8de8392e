"""rename (meta/ops/rename.py): POSIX replace rules, subtree check, NOREPLACE, EXCHANGE,
link counts and permissions."""

from __future__ import annotations

import os

import pytest

from meta.ops.rename import rename
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.kv.retry import run_transaction
from threefs.wire import meta as wire
from threefs.wire.meta import ROOT_INODE, InodeType, PathAt, RenameFlags


def mv(fs, src, dst, *, flags=0, caller=None, request=None):
    req = wire.RenameRequest(
        src=PathAt(ROOT_INODE, os.fsencode(src)),
        dst=PathAt(ROOT_INODE, os.fsencode(dst)),
        flags=int(flags),
        caller=caller or fs.caller,
        request=request or fs.request_id(),
    )
    return fs.call(rename, req)


def touch(fs, path, mode=0o644):
    return fs.mknod(path, InodeType.FILE, mode)


def refused(fs, code, fn, *args, **kwargs):
    before = fs.snapshot()
    with pytest.raises(ThreeFSError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, info.value
    assert fs.snapshot() == before


def gc_ids(fs):
    return [job.inode.id for _, _, job in run_transaction(fs.env.engine, records.list_gc_jobs)]


def test_rename_file_within_and_across_directories(fs):
    fs.mkdir("a")
    fs.mkdir("b")
    file = touch(fs, "a/f")
    response = mv(fs, "a/f", "a/g")
    assert response.inode.id == file.id and response.replaced is None
    assert fs.names("a") == [b"g"]
    mv(fs, "a/g", "b/h")
    assert fs.names("a") == [] and fs.names("b") == [b"h"]
    assert fs.stat("b/h").id == file.id and fs.stat("b/h").nlink == 1
    assert fs.stat("a").nlink == 2 and fs.stat("b").nlink == 2


def test_rename_directory_updates_parent_name_and_link_counts(fs):
    fs.mkdir("a/sub/deep", recursive=True)
    fs.mkdir("b")
    sub = fs.stat("a/sub")
    moved = mv(fs, "a/sub", "b/renamed").inode
    assert moved.id == sub.id and moved.parent == fs.stat("b").id and moved.name == b"renamed"
    assert fs.stat("a").nlink == 2 and fs.stat("b").nlink == 3
    assert fs.real_path("b/renamed/deep") == b"/b/renamed/deep"


def test_replace_file_over_file_drops_a_link(local_fs):
    old = touch(local_fs, "old")
    touch(local_fs, "new")
    local_fs.link("old", "old-2")
    response = mv(local_fs, "new", "old")
    assert response.replaced.id == old.id
    assert local_fs.stat("old-2").nlink == 1 and gc_ids(local_fs) == []
    newer = touch(local_fs, "newer")
    mv(local_fs, "newer", "old-2")
    assert gc_ids(local_fs) == [old.id]
    assert local_fs.stat("old-2").id == newer.id


def test_replace_directory_over_empty_directory(local_fs):
    local_fs.mkdir("x/src", recursive=True)
    target = local_fs.mkdir("y/target", recursive=True)
    touch(local_fs, "x/src/keep")
    mv(local_fs, "x/src", "y/target")
    assert local_fs.names("y/target") == [b"keep"]
    assert local_fs.stat("x").nlink == 2 and local_fs.stat("y").nlink == 3
    assert local_fs.batch_stat(inodes=[target.id]).inodes == [None]
    # same parent: the replaced directory's '..' goes, the moved one's stays
    local_fs.mkdir("z/p", recursive=True)
    local_fs.mkdir("z/q")
    mv(local_fs, "z/p", "z/q")
    assert local_fs.stat("z").nlink == 3 and local_fs.names("z") == [b"q"]


def test_replace_rule_errors_change_nothing(local_fs):
    local_fs.mkdir("d")
    local_fs.mkdir("full")
    touch(local_fs, "full/x")
    local_fs.mkdir("empty")
    touch(local_fs, "f")
    refused(local_fs, Code.META_IS_DIRECTORY, mv, local_fs, "f", "d")
    refused(local_fs, Code.META_NOT_DIRECTORY, mv, local_fs, "d", "f")
    refused(local_fs, Code.META_NOT_EMPTY, mv, local_fs, "empty", "full")
    refused(local_fs, Code.META_NOT_FOUND, mv, local_fs, "missing", "m")
    refused(local_fs, Code.META_NOT_DIRECTORY, mv, local_fs, "f/", "g")
    refused(local_fs, Code.META_INVALID_NAME, mv, local_fs, "d/.", "e")
    refused(local_fs, Code.META_INVALID_NAME, mv, local_fs, "/", "e")
    refused(local_fs, Code.META_INVALID_NAME, mv, local_fs, "d", "full/..")
    refused(
        local_fs, Code.INVALID_ARG, mv, local_fs, "f", "g", flags=RenameFlags.NOREPLACE | RenameFlags.EXCHANGE
    )
    refused(local_fs, Code.INVALID_ARG, mv, local_fs, "f", "g", flags=64)


def test_a_directory_never_moves_into_its_own_subtree(local_fs):
    local_fs.mkdir("a/b/c", recursive=True)
    refused(local_fs, Code.META_INVALID_NAME, mv, local_fs, "a", "a/b/c/a")
    refused(local_fs, Code.META_INVALID_NAME, mv, local_fs, "a", "a/x")
    refused(local_fs, Code.META_INVALID_NAME, mv, local_fs, "a/b", "a/b/c/d")
    # the parent over a non-empty child's ancestor is caught by the emptiness rule
    refused(local_fs, Code.META_NOT_EMPTY, mv, local_fs, "a/b/c", "a")


def test_same_inode_is_a_no_op(local_fs):
    touch(local_fs, "a")
    local_fs.link("a", "b")

    def state():  # all but the idempotency records the two renames add
        return {k: v for k, v in local_fs.snapshot().items() if not k.startswith(b"IDEM")}

    before = state()
    mv(local_fs, "a", "b")
    mv(local_fs, "a", "a")
    assert state() == before
    assert local_fs.names("/") == [b"a", b"b"] and local_fs.stat("a").nlink == 2


def test_noreplace(local_fs):
    touch(local_fs, "a")
    touch(local_fs, "b")
    refused(local_fs, Code.META_EXISTS, mv, local_fs, "a", "b", flags=RenameFlags.NOREPLACE)
    mv(local_fs, "a", "c", flags=RenameFlags.NOREPLACE)
    assert local_fs.names("/") == [b"b", b"c"]


def test_exchange_a_file_and_a_directory(fs):
    fs.mkdir("p")
    fs.mkdir("q")
    file = touch(fs, "p/f")
    directory = fs.mkdir("q/d")
    touch(fs, "q/d/inner")
    response = mv(fs, "p/f", "q/d", flags=RenameFlags.EXCHANGE)
    assert response.inode.id == file.id and response.replaced.id == directory.id
    assert fs.stat("p/f").id == directory.id and fs.stat("q/d").id == file.id
    moved_dir = fs.stat("p/f")
    assert moved_dir.parent == fs.stat("p").id and moved_dir.name == b"f"
    assert fs.stat("p").nlink == 3 and fs.stat("q").nlink == 2
    assert fs.names("p/f") == [b"inner"]
    assert fs.real_path("p/f/inner") == b"/p/f/inner"


def test_exchange_rules(local_fs):
    local_fs.mkdir("a/b", recursive=True)
    touch(local_fs, "f")
    refused(local_fs, Code.META_NOT_FOUND, mv, local_fs, "f", "missing", flags=RenameFlags.EXCHANGE)
    refused(local_fs, Code.META_INVALID_NAME, mv, local_fs, "a", "a/b", flags=RenameFlags.EXCHANGE)
    refused(local_fs, Code.META_INVALID_NAME, mv, local_fs, "a/b", "a", flags=RenameFlags.EXCHANGE)
    # two directories in one parent: parent/name swap, link counts unchanged
    local_fs.mkdir("a/c")
    b, c = local_fs.stat("a/b"), local_fs.stat("a/c")
    mv(local_fs, "a/b", "a/c", flags=RenameFlags.EXCHANGE)
    assert local_fs.stat("a/b").id == c.id and local_fs.stat("a/b").name == b"b"
    assert local_fs.stat("a/c").id == b.id and local_fs.stat("a").nlink == 4


def test_rename_permissions(local_fs):
    local_fs.mkdir("ro", 0o755)
    touch(local_fs, "ro/f")
    local_fs.mkdir("open", 0o777)
    user = local_fs.as_user(1000)
    refused(local_fs, Code.META_PERMISSION_DENIED, mv, user, "ro/f", "open/f")
    touch(user, "open/mine")
    refused(local_fs, Code.META_PERMISSION_DENIED, mv, user, "open/mine", "ro/mine")
    # moving a directory to another parent needs write on it (its '..' changes)
    local_fs.mkdir("open/rootdir", 0o755)
    local_fs.mkdir("open/other", 0o777)
    refused(local_fs, Code.META_PERMISSION_DENIED, mv, user, "open/rootdir", "open/other/x")
    mv(user, "open/rootdir", "open/renamed")  # same parent: allowed
    # sticky directory: neither side's entry of another user may be moved or replaced
    local_fs.mkdir("tmp", 0o1777)
    other = local_fs.as_user(2000)
    touch(other, "tmp/theirs")
    touch(user, "tmp/mine")
    refused(local_fs, Code.META_NOT_PERMITTED, mv, user, "tmp/theirs", "tmp/x")
    refused(local_fs, Code.META_NOT_PERMITTED, mv, user, "tmp/mine", "tmp/theirs")
    mv(user, "tmp/mine", "tmp/mine2")


def test_rename_is_idempotent(local_fs):
    touch(local_fs, "a")
    request = local_fs.request_id()
    first = mv(local_fs, "a", "b", request=request)
    assert mv(local_fs, "a", "b", request=request) == first
