"""fsck (meta/ops/fsck.py): each problem kind planted through meta.store.records, found, repaired;
and random operation sequences that must leave a namespace fsck finds clean."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meta_fs import MetaFs, make_env

from meta.ops.fsck import PROBLEM_KINDS, fsck
from meta.ops.remove import remove
from meta.ops.rename import rename
from meta.ops.sync import sync
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.kv import open_engine
from threefs.kv.retry import run_transaction
from threefs.wire import meta as wire
from threefs.wire.meta import ROOT_INODE, Caller, DirEntry, FileSession, Inode, InodeType, OpenFlags, PathAt


def check(fs, repair=False):
    return fs.call(fsck, wire.FsckRequest(repair=repair, caller=fs.caller))


def kinds(response):
    return sorted(problem.kind for problem in response.problems)


def plant(fs, fn):
    run_transaction(fs.env.engine, fn)


def load(fs, inode_id):
    return run_transaction(fs.env.engine, lambda txn: records.load_inode(txn, inode_id))


def stray_file(inode_id, nlink=1):
    return Inode(
        id=inode_id,
        type=InodeType.FILE,
        mode=0o644,
        uid=0,
        gid=0,
        nlink=nlink,
        atime_ns=1,
        mtime_ns=1,
        ctime_ns=1,
    )


def repaired_then_clean(fs, expected_kinds):
    """Report-only changes nothing; repair reports the same and marks them repaired; a second
    fsck is clean."""
    before = fs.snapshot()
    report = check(fs)
    assert kinds(report) == sorted(expected_kinds)
    assert not any(problem.repaired for problem in report.problems)
    assert fs.snapshot() == before
    repair = check(fs, repair=True)
    assert kinds(repair) == kinds(report) and all(problem.repaired for problem in repair.problems)
    assert check(fs).problems == []
    return report


def _sample_tree(fs):
    fs.mkdir("a/b", recursive=True)
    fs.mknod("a/f", InodeType.FILE)
    fs.link("a/f", "a/b/g")
    fs.symlink("a", "s")


def test_a_clean_namespace_has_no_problems(fs):
    _sample_tree(fs)
    response = check(fs)
    assert response.problems == []
    assert response.inodes == 5 and response.entries == 5


def test_fsck_is_admin_only(local_fs):
    with pytest.raises(ThreeFSError) as info:
        check(local_fs.as_user(1000))
    assert info.value.code == Code.META_NOT_PERMITTED


def test_dangling_entries(local_fs):
    _sample_tree(local_fs)
    a = local_fs.stat("a").id
    plant(local_fs, lambda txn: records.save_entry(txn, a, b"ghost", DirEntry(777_777, InodeType.FILE)))
    plant(local_fs, lambda txn: records.save_entry(txn, 888_888, b"lost", DirEntry(a, InodeType.DIRECTORY)))
    report = repaired_then_clean(local_fs, ["dangling_entry", "dangling_entry"])
    assert {(p.parent, p.name) for p in report.problems} == {(a, b"ghost"), (888_888, b"lost")}
    assert local_fs.names("a") == [b"b", b"f"]


def test_orphan_inodes_go_to_gc(local_fs):
    _sample_tree(local_fs)
    ids = [local_fs.env.allocator.allocate() for _ in range(3)]
    lost_dir = Inode(
        id=ids[0],
        type=InodeType.DIRECTORY,
        mode=0o755,
        uid=0,
        gid=0,
        nlink=2,
        atime_ns=1,
        mtime_ns=1,
        ctime_ns=1,
        parent=ROOT_INODE,
        name=b"gone",
    )

    def corrupt(txn):
        records.save_inode(txn, lost_dir)
        records.save_inode(txn, stray_file(ids[1]))
        records.save_entry(txn, ids[0], b"inside", DirEntry(ids[1], InodeType.FILE))
        records.save_inode(txn, stray_file(ids[2]))

    plant(local_fs, corrupt)
    report = repaired_then_clean(local_fs, ["orphan_inode"] * 3)
    assert {p.inode for p in report.problems} == set(ids)
    queued = [job.inode.id for _, _, job in run_transaction(local_fs.env.engine, records.list_gc_jobs)]
    assert sorted(queued) == sorted(ids[1:])
    assert all(load(local_fs, inode_id) is None for inode_id in ids)
    assert run_transaction(local_fs.env.engine, lambda txn: records.has_entries(txn, ids[0])) is False


def test_what_is_not_an_orphan(local_fs):
    opened = local_fs.open("open", OpenFlags.WRITE | OpenFlags.CREATE)
    at = PathAt(ROOT_INODE, b"open")
    local_fs.call(
        remove, wire.RemoveRequest(at=at, caller=local_fs.caller, request=local_fs.request_id())
    )  # nlink 0 with a session: waits for the close
    queued = stray_file(local_fs.env.allocator.allocate(), nlink=0)

    def plant_queued(txn):  # an inode still present but already on the GC queue
        records.save_inode(txn, queued)
        records.queue_gc(txn, queued, due_ns=5, queued_ns=1, reason="test")

    plant(local_fs, plant_queued)
    assert check(local_fs).problems == []
    # unreachable, nlink 1 but with a session: its link count is wrong (0), not an orphan
    kept = local_fs.open("kept", OpenFlags.WRITE | OpenFlags.CREATE)
    plant(local_fs, lambda txn: records.delete_entry(txn, ROOT_INODE, b"kept"))
    report = repaired_then_clean(local_fs, ["wrong_nlink"])
    assert report.problems[0].inode == kept.inode.id and load(local_fs, kept.inode.id).nlink == 0
    close = wire.SyncRequest(
        inode=kept.inode.id,
        session_id=kept.session_id,
        close=True,
        caller=local_fs.caller,
        request=local_fs.request_id(),
    )
    local_fs.call(sync, close)
    assert load(local_fs, kept.inode.id) is None
    assert load(local_fs, opened.inode.id).nlink == 0  # still open: still there


def test_wrong_link_counts(local_fs):
    _sample_tree(local_fs)
    a, f = local_fs.stat("a"), local_fs.stat("a/f")

    def corrupt(txn):
        records.save_inode(txn, Inode(**{**_fields(f), "nlink": 5}))
        records.save_inode(txn, Inode(**{**_fields(a), "nlink": 2}))
        records.save_inode(txn, Inode(**{**_fields(local_fs.stat("/")), "nlink": 9}))

    plant(local_fs, corrupt)
    repaired_then_clean(local_fs, ["wrong_nlink"] * 3)
    assert (local_fs.stat("a/f").nlink, local_fs.stat("a").nlink, local_fs.stat("/").nlink) == (2, 3, 3)


def _fields(inode):
    return {name: getattr(inode, name) for name in inode.__struct_fields__}


def test_directory_parent_and_duplicate_entries(local_fs):
    _sample_tree(local_fs)
    a, b = local_fs.stat("a"), local_fs.stat("a/b")

    def corrupt(txn):
        records.save_inode(txn, Inode(**{**_fields(b), "parent": ROOT_INODE, "name": b"wrong"}))
        records.save_entry(txn, b.id, b"loop", DirEntry(a.id, InodeType.DIRECTORY))  # a cycle

    plant(local_fs, corrupt)
    repaired_then_clean(local_fs, ["bad_parent", "duplicate_dir_entry"])
    fixed = local_fs.stat("a/b")
    assert (fixed.parent, fixed.name) == (a.id, b"b") and local_fs.names("a/b") == [b"g"]


def test_entry_types_sessions_and_missing_root(local_fs):
    _sample_tree(local_fs)
    f = local_fs.stat("a/f")
    session = FileSession(session_id=os.urandom(16), inode=999_999, client_id=os.urandom(16))

    def corrupt(txn):
        records.save_entry(txn, local_fs.stat("a").id, b"f", DirEntry(f.id, InodeType.SYMLINK))
        records.save_session(txn, session)

    plant(local_fs, corrupt)
    repaired_then_clean(local_fs, ["dangling_session", "wrong_entry_type"])
    assert local_fs.ls("a").entries[1].type == InodeType.FILE
    plant(local_fs, lambda txn: records.delete_inode(txn, ROOT_INODE))
    before = local_fs.snapshot()
    response = check(local_fs, repair=True)
    assert kinds(response) == ["missing_root"] and not response.problems[0].repaired
    assert local_fs.snapshot() == before


def test_problem_kinds_are_documented():
    with open(os.path.join(os.path.dirname(__file__), "../../docs/meta.md")) as file:
        doc = file.read()
    assert all(kind in doc for kind in PROBLEM_KINDS)


# ------------------------------------------------------------------------- random sequences

_NAMES = ["a", "b", "c"]
_KINDS = ["mkdir", "mkdir", "create", "open", "close", "link", "unlink", "rmdir", "rm_r", "rename", "rename"]


def _tree_paths(fs: MetaFs) -> tuple[list[str], list[str]]:
    """``(directories, others)``: every path in the tree (the root as "")."""
    directories, others, pending = [""], [], [""]
    while pending:
        directory = pending.pop()
        for name in fs.names(directory or "/"):
            path = f"{directory}/{name.decode()}".lstrip("/")
            if fs.stat(path, follow=False).type == InodeType.DIRECTORY:
                directories.append(path)
                pending.append(path)
            else:
                others.append(path)
    return directories, others


def _draw_op(rng: random.Random, fs: MetaFs) -> tuple:
    """An operation on mostly existing paths, so that most operations do something."""
    directories, others = _tree_paths(fs)

    def new_path() -> str:
        return f"{rng.choice(directories)}/{rng.choice(_NAMES)}".lstrip("/")

    def some_path() -> str:
        existing = directories[1:] + others
        return rng.choice(existing) if existing and rng.random() < 0.75 else new_path()

    kind = rng.choice(_KINDS)
    if kind in ("mkdir", "create", "open"):
        return (kind, new_path())
    if kind == "close":
        return (kind, rng.randrange(8))
    if kind == "link":
        return (kind, some_path(), new_path())
    if kind == "rename":
        src = rng.choice(directories[1:]) if len(directories) > 1 and rng.random() < 0.5 else some_path()
        return (kind, src, some_path(), rng.choice([0, 0, 0, 1, 2]))
    return (kind, some_path())


def _apply(fs: MetaFs, op: tuple, sessions: list) -> None:
    kind, *args = op

    def at(path):
        return PathAt(ROOT_INODE, path.encode())

    common = {"caller": fs.caller, "request": fs.request_id()}
    if kind == "mkdir":
        fs.mkdir(args[0], recursive=True)
    elif kind == "create":
        fs.mknod(args[0], InodeType.FILE)
    elif kind == "open":
        opened = fs.open(args[0], OpenFlags.WRITE | OpenFlags.CREATE)
        sessions.append((opened.inode.id, opened.session_id))
    elif kind == "close":
        if sessions:
            inode, session = sessions.pop(args[0] % len(sessions))
            request = wire.SyncRequest(inode=inode, session_id=session, close=True, length_hint=3, **common)
            fs.call(sync, request)
    elif kind == "link":
        fs.link(args[0], args[1])
    elif kind in ("unlink", "rmdir", "rm_r"):
        recursive = kind == "rm_r"
        fs.call(
            remove,
            wire.RemoveRequest(at=at(args[0]), directory=kind == "rmdir", recursive=recursive, **common),
        )
    elif kind == "rename":
        fs.call(rename, wire.RenameRequest(src=at(args[0]), dst=at(args[1]), flags=args[2], **common))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False))
def test_random_operations_leave_a_consistent_namespace(rng):
    """Operations drawn from a seeded generator; fsck after each must find nothing."""
    with open_engine("mem://") as engine:
        fs = MetaFs(make_env(engine))
        sessions: list = []
        for _ in range(60):
            op = _draw_op(rng, fs)
            try:
                _apply(fs, op, sessions)
            except ThreeFSError as exc:
                assert exc.code.name.startswith("META_"), exc  # refusals only, never a crash
            assert check(fs).problems == [], op
        for inode, session in sessions:  # closing every session leaves no unlinked file behind
            req = wire.SyncRequest(
                inode=inode,
                session_id=session,
                close=True,
                caller=Caller(admin=True),
                request=fs.request_id(),
            )
            fs.call(sync, req)
        response = check(fs)
        assert response.problems == []
        assert all(inode.nlink > 0 for inode in _all_inodes(fs))


def _all_inodes(fs):
    from threefs.kv import keys

    def read(txn):
        begin, end = keys.prefix_range(keys.Prefix.INODE.value)
        return [records.load_inode(txn, keys.parse_inode_key(key)) for key, _ in txn.get_range(begin, end)]

    return run_transaction(fs.env.engine, read)
