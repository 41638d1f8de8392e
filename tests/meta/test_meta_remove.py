"""unlink, rmdir and rm -r (meta/ops/remove.py): entries, link counts, the GC queue, permissions."""

from __future__ import annotations

import os

import pytest

from meta.ops.remove import remove
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.kv.retry import run_transaction
from threefs.wire import meta as wire
from threefs.wire.meta import ROOT_INODE, InodeType, OpenFlags, PathAt


def rm(fs, path, *, directory=False, recursive=False, caller=None, request=None, parent=ROOT_INODE):
    req = wire.RemoveRequest(
        at=PathAt(parent, os.fsencode(path)),
        directory=directory,
        recursive=recursive,
        caller=caller or fs.caller,
        request=request or fs.request_id(),
    )
    return fs.call(remove, req).queued_for_gc


def touch(fs, path, mode=0o644):
    """A regular file with no write session (``fs.create`` opens one)."""
    return fs.mknod(path, InodeType.FILE, mode)


def refused(fs, code, fn, *args, **kwargs):
    """``fn`` raises ``code`` and leaves every key as it was."""
    before = fs.snapshot()
    with pytest.raises(ThreeFSError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, info.value
    assert fs.snapshot() == before


def gc_jobs(fs):
    return run_transaction(fs.env.engine, lambda txn: records.list_gc_jobs(txn))


def inode_exists(fs, inode_id):
    return run_transaction(fs.env.engine, lambda txn: records.load_inode(txn, inode_id)) is not None


# ------------------------------------------------------------------------------------- unlink


def test_unlink_last_link_queues_the_file_for_gc(fs):
    fs.env.gc_delay_ns = 5_000
    fs.mkdir("d")
    file = touch(fs, "d/f")
    before = fs.stat("d")
    assert rm(fs, "d/f") == 1
    assert fs.names("d") == []
    assert not inode_exists(fs, file.id)
    [(_, due_ns, job)] = gc_jobs(fs)
    assert job.inode.id == file.id and job.inode.nlink == 0 and job.inode.layout == file.layout
    assert due_ns == job.queued_ns + 5_000
    after = fs.stat("d")
    assert after.mtime_ns > before.mtime_ns and after.nlink == before.nlink
    with pytest.raises(ThreeFSError) as info:
        fs.stat("d/f")
    assert info.value.code == Code.META_NOT_FOUND


def test_unlink_is_idempotent_by_request_id(local_fs):
    touch(local_fs, "f")
    request = local_fs.request_id()
    assert rm(local_fs, "f", request=request) == 1
    assert rm(local_fs, "f", request=request) == 1  # the recorded answer, no error
    assert len(gc_jobs(local_fs)) == 1
    with pytest.raises(ThreeFSError) as info:
        rm(local_fs, "f")
    assert info.value.code == Code.META_NOT_FOUND


def test_unlink_of_one_hard_link_keeps_the_file(local_fs):
    file = touch(local_fs, "a")
    local_fs.link("a", "b")
    assert rm(local_fs, "a") == 0
    assert local_fs.stat("b").nlink == 1
    assert gc_jobs(local_fs) == []
    assert rm(local_fs, "b") == 1
    assert [job.inode.id for _, _, job in gc_jobs(local_fs)] == [file.id]


def test_unlink_of_chunkless_inodes_deletes_them_without_gc(local_fs):
    link = local_fs.symlink("target", "s")
    fifo = local_fs.mknod("p", InodeType.FIFO)
    assert rm(local_fs, "s") == 0 and rm(local_fs, "p") == 0
    assert not inode_exists(local_fs, link.id) and not inode_exists(local_fs, fifo.id)
    assert gc_jobs(local_fs) == []


def test_unlink_of_a_file_open_for_writing_waits_for_the_session(local_fs):
    opened = local_fs.open("f", OpenFlags.WRITE | OpenFlags.CREATE)
    assert rm(local_fs, "f") == 0
    orphan = local_fs.batch_stat(inodes=[opened.inode.id]).inodes[0]
    assert orphan is not None and orphan.nlink == 0
    assert local_fs.names("/") == [] and gc_jobs(local_fs) == []


def test_unlink_refusals_change_nothing(local_fs):
    local_fs.mkdir("d")
    touch(local_fs, "f")
    refused(local_fs, Code.META_IS_DIRECTORY, rm, local_fs, "d")
    refused(local_fs, Code.META_NOT_FOUND, rm, local_fs, "missing")
    refused(local_fs, Code.META_NOT_DIRECTORY, rm, local_fs, "f/")
    refused(local_fs, Code.META_NOT_DIRECTORY, rm, local_fs, "f/x")
    refused(local_fs, Code.META_INVALID_NAME, rm, local_fs, "d/.")
    refused(local_fs, Code.META_INVALID_NAME, rm, local_fs, "d/..")
    refused(local_fs, Code.META_NAME_TOO_LONG, rm, local_fs, "x" * 256)


# -------------------------------------------------------------------------------------- rmdir


def test_rmdir_removes_an_empty_directory(fs):
    fs.mkdir("a")
    sub = fs.mkdir("a/b")
    assert fs.stat("a").nlink == 3
    assert rm(fs, "a/b", directory=True) == 0
    assert fs.stat("a").nlink == 2 and fs.names("a") == []
    assert not inode_exists(fs, sub.id) and gc_jobs(fs) == []
    assert rm(fs, "a/", directory=True) == 0
    assert fs.stat("/").nlink == 2


def test_rmdir_refusals_change_nothing(local_fs):
    local_fs.mkdir("d")
    touch(local_fs, "d/f")
    local_fs.mkdir("e")
    refused(local_fs, Code.META_NOT_EMPTY, rm, local_fs, "d", directory=True)
    refused(local_fs, Code.META_NOT_DIRECTORY, rm, local_fs, "d/f", directory=True)
    refused(local_fs, Code.META_INVALID_NAME, rm, local_fs, "/", directory=True)
    refused(local_fs, Code.META_INVALID_NAME, rm, local_fs, "", directory=True)
    refused(local_fs, Code.META_INVALID_NAME, rm, local_fs, "e/.", directory=True)
    refused(local_fs, Code.META_INVALID_NAME, rm, local_fs, "e/..", directory=True)
    refused(local_fs, Code.META_INVALID_NAME, rm, local_fs, "", directory=True, parent=local_fs.stat("e").id)


# -------------------------------------------------------------------------------- permissions


def test_removal_needs_write_and_search_on_the_parent(local_fs):
    local_fs.mkdir("d", 0o755)
    touch(local_fs, "d/f")
    user = local_fs.as_user(1000)
    refused(local_fs, Code.META_PERMISSION_DENIED, rm, user, "d/f")
    local_fs.mkdir("w", 0o773)  # others: write and search, no read
    touch(local_fs, "w/f")
    assert rm(user, "w/f") == 1


def test_sticky_directory_protects_other_users_entries(local_fs):
    local_fs.mkdir("tmp", 0o1777)
    alice, bob = local_fs.as_user(1000), local_fs.as_user(2000)
    touch(alice, "tmp/a")
    bob.mkdir("tmp/bdir")
    refused(local_fs, Code.META_NOT_PERMITTED, rm, bob, "tmp/a")
    refused(local_fs, Code.META_NOT_PERMITTED, rm, alice, "tmp/bdir", directory=True)
    assert rm(alice, "tmp/a") == 1
    assert rm(bob, "tmp/bdir", directory=True) == 0
    # the directory's owner may remove anyone's entry; admin root too
    local_fs.mkdir("own", 0o777)
    carol = local_fs.as_user(3000)
    carol.mkdir("own/cdir", 0o1777)
    touch(alice, "own/cdir/x")
    touch(alice, "own/cdir/y")
    refused(local_fs, Code.META_NOT_PERMITTED, rm, bob, "own/cdir/x")
    assert rm(carol, "own/cdir/x") == 1
    assert rm(local_fs, "own/cdir/y") == 1


# -------------------------------------------------------------------------------------- rm -r


def _tree(fs):
    """/t with files, a nested directory, a symlink and hard links inside and outside."""
    fs.mkdir("t")
    fs.mkdir("t/a/b", recursive=True)
    files = [touch(fs, path) for path in ("t/f1", "t/a/f2", "t/a/b/f3", "t/a/b/f4")]
    fs.link("t/a/b/f3", "t/a/f3-again")  # both links inside the tree
    fs.link("t/a/b/f4", "outside")  # one link outside survives
    fs.symlink("/nowhere", "t/a/s")
    fs.mknod("t/a/b/p", InodeType.FIFO)
    return files


def test_rm_r_moves_the_whole_tree_to_gc_in_one_transaction(fs):
    f1, f2, f3, f4 = _tree(fs)
    top, a, b = fs.stat("t"), fs.stat("t/a"), fs.stat("t/a/b")
    root_nlink = fs.stat("/").nlink
    assert rm(fs, "t", recursive=True) == 3
    assert fs.names("/") == [b"outside"]
    assert fs.stat("/").nlink == root_nlink - 1
    assert sorted(job.inode.id for _, _, job in gc_jobs(fs)) == sorted([f1.id, f2.id, f3.id])
    for inode in (top, a, b, f1, f2, f3):
        assert not inode_exists(fs, inode.id)
    assert fs.stat("outside").nlink == 1 and fs.stat("outside").id == f4.id

    def leftovers(txn):
        return [parent for parent in (top.id, a.id, b.id) if records.has_entries(txn, parent)]

    assert run_transaction(fs.env.engine, leftovers) == []


def test_rm_r_of_a_file_unlinks_it(local_fs):
    touch(local_fs, "f")
    assert rm(local_fs, "f", recursive=True) == 1


def test_rm_r_refused_inside_the_tree_changes_nothing(local_fs):
    user = local_fs.as_user(1000)
    local_fs.mkdir("home", 0o777)
    user.mkdir("home/t")
    touch(user, "home/t/f")
    local_fs.mkdir("home/t/root-owned", 0o755)  # root-made directory inside the user's tree
    touch(local_fs, "home/t/root-owned/g")
    refused(local_fs, Code.META_PERMISSION_DENIED, rm, user, "home/t", recursive=True)
    # sticky directory inside the tree: entries of others stay protected
    local_fs.mkdir("home/s", 0o1777)
    touch(local_fs, "home/s/root-file", 0o666)
    refused(local_fs, Code.META_NOT_PERMITTED, rm, user, "home/s", recursive=True)
    assert rm(local_fs, "home", recursive=True) == 3
    assert local_fs.names("/") == []
