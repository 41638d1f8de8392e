"""sync/close and session pruning (meta/ops/sync.py), the GC queue (meta/ops/gc.py)."""

from __future__ import annotations

import os

import pytest

from meta.ops.context import execute_op
from meta.ops.gc import finish_job, gc_list, take_due_jobs
from meta.ops.open import open_file
from meta.ops.remove import remove
from meta.ops.sync import all_sessions, prune_sessions, sessions_of, sync
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.kv import keys
from threefs.kv.retry import run_transaction
from threefs.wire import meta as wire
from threefs.wire.meta import ROOT_INODE, Caller, InodeType, OpenFlags, PathAt

WRITE = OpenFlags.WRITE | OpenFlags.CREATE


def sync_(fs, inode, session=b"", *, caller=None, request=None, **fields):
    req = wire.SyncRequest(
        inode=inode,
        session_id=session,
        caller=caller or fs.caller,
        request=request or fs.request_id(),
        **fields,
    )
    return fs.call(sync, req).inode


def unlink(fs, path):
    req = wire.RemoveRequest(
        at=PathAt(ROOT_INODE, os.fsencode(path)), caller=fs.caller, request=fs.request_id()
    )
    return fs.call(remove, req).queued_for_gc


def run(fs, fn, caller=None):
    return execute_op(fs.env, fn, caller=caller or fs.caller)


def refused(fs, code, fn, *args, **kwargs):
    before = fs.snapshot()
    with pytest.raises(ThreeFSError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, info.value
    assert fs.snapshot() == before


def gc_ids(fs):
    return [job.inode.id for _, _, job in run_transaction(fs.env.engine, records.list_gc_jobs)]


# --------------------------------------------------------------------------------------- sync


def test_length_hints_only_raise_the_length(fs):
    opened = fs.open("f", WRITE)
    inode, session = opened.inode.id, opened.session_id
    assert sync_(fs, inode, session, length_hint=100).length == 100
    assert sync_(fs, inode, session, length_hint=50).length == 100
    assert sync_(fs, inode, session, length_hint=4096).length == 4096
    assert fs.stat("f").length == 4096


def test_wrote_stamps_mtime_and_ctime(local_fs):
    opened = local_fs.open("f", WRITE)
    before = local_fs.stat("f")
    after = sync_(local_fs, opened.inode.id, opened.session_id, wrote=True)
    assert after.mtime_ns == after.ctime_ns > before.mtime_ns
    assert sync_(local_fs, opened.inode.id, opened.session_id).mtime_ns == after.mtime_ns


def test_close_ends_the_session(fs):
    opened = fs.open("f", WRITE)
    inode, session = opened.inode.id, opened.session_id
    assert [s.session_id for s in run(fs, lambda ctx: sessions_of(ctx, inode))] == [session]
    request = fs.request_id()
    closed = sync_(fs, inode, session, close=True, length_hint=7, request=request)
    assert closed.length == 7 and run(fs, lambda ctx: sessions_of(ctx, inode)) == []
    assert sync_(fs, inode, session, close=True, length_hint=7, request=request) == closed  # a retry
    refused(fs, Code.META_STALE_SESSION, sync_, fs, inode, session, close=True)
    refused(fs, Code.META_STALE_SESSION, sync_, fs, inode, os.urandom(16), length_hint=1)


def test_sync_refusals(local_fs):
    local_fs.mkdir("d")
    local_fs.symlink("x", "s")
    opened = local_fs.open("f", WRITE, 0o644)
    refused(local_fs, Code.META_IS_DIRECTORY, sync_, local_fs, local_fs.stat("d").id, length_hint=1)
    refused(local_fs, Code.INVALID_ARG, sync_, local_fs, local_fs.stat("s", follow=False).id, length_hint=1)
    refused(local_fs, Code.META_NOT_FOUND, sync_, local_fs, 999_999, length_hint=1)
    refused(local_fs, Code.INVALID_ARG, sync_, local_fs, opened.inode.id, close=True)
    # without a session the caller needs write permission
    user = local_fs.as_user(1000)
    refused(local_fs, Code.META_PERMISSION_DENIED, sync_, user, opened.inode.id, length_hint=9)
    assert sync_(local_fs, opened.inode.id, length_hint=9).length == 9  # admin root, no session


def test_unlinked_file_goes_to_gc_when_its_last_session_closes(fs):
    first = fs.open("f", WRITE)
    second = fs.open("f", OpenFlags.WRITE)
    inode = first.inode.id
    assert unlink(fs, "f") == 0 and gc_ids(fs) == []
    assert sync_(fs, inode, first.session_id, close=True, length_hint=10).nlink == 0
    assert gc_ids(fs) == []
    last = sync_(fs, inode, second.session_id, close=True, length_hint=20)
    assert last.nlink == 0 and last.length == 20
    [(_, _, job)] = run_transaction(fs.env.engine, records.list_gc_jobs)
    assert job.inode.id == inode and job.inode.length == 20 and job.reason
    assert fs.batch_stat(inodes=[inode]).inodes == [None]


# ----------------------------------------------------------------------------- pruning sessions


def test_prune_sessions_of_dead_clients_and_nodes(local_fs):
    dead, alive = local_fs.as_user(0, admin=True), local_fs.as_user(0, admin=True)
    orphan = dead.open("orphan", WRITE)
    kept = dead.open("kept", WRITE)
    live = alive.open("live", WRITE)
    request = wire.OpenRequest(
        at=PathAt(ROOT_INODE, b"by-node"),
        flags=WRITE,
        client_node=7,
        caller=alive.caller,
        request=alive.request_id(),
    )
    node_file = alive.call(open_file, request)
    unlink(local_fs, "orphan")
    assert len(run(local_fs, lambda ctx: all_sessions(ctx))) == 4
    assert run(local_fs, lambda ctx: prune_sessions(ctx)) == 0
    removed = run(local_fs, lambda ctx: prune_sessions(ctx, dead_clients={dead.client_id}))
    assert removed == 2
    assert gc_ids(local_fs) == [orphan.inode.id]
    assert local_fs.stat("kept").nlink == 1  # still linked: only its session went
    remaining = {s.inode for s in run(local_fs, lambda ctx: all_sessions(ctx))}
    assert remaining == {live.inode.id, node_file.inode.id}
    assert run(local_fs, lambda ctx: prune_sessions(ctx, dead_nodes={0, 7})) == 1
    assert [s.inode for s in run(local_fs, lambda ctx: all_sessions(ctx))] == [live.inode.id]
    refused(local_fs, Code.META_STALE_SESSION, sync_, local_fs, kept.inode.id, kept.session_id, close=True)


# ------------------------------------------------------------------------------------------- GC


def _queue_three(fs):
    fs.env.gc_delay_ns = 10**9
    files = [fs.mknod(f"f{i}", InodeType.FILE) for i in range(3)]
    for i in range(3):
        unlink(fs, f"f{i}")
    return files


def test_gc_list_is_admin_only_and_in_due_order(fs):
    files = _queue_three(fs)
    response = fs.call(gc_list, wire.GcListRequest(limit=2, caller=fs.caller))
    assert [job.inode.id for job in response.jobs] == [f.id for f in files[:2]]
    assert response.due_ns == sorted(response.due_ns)
    assert all(due == job.queued_ns + 10**9 for due, job in zip(response.due_ns, response.jobs, strict=True))
    user = Caller(uid=1000, gid=1000)
    with pytest.raises(ThreeFSError) as info:
        fs.call(gc_list, wire.GcListRequest(caller=user))
    assert info.value.code == Code.META_NOT_PERMITTED


def test_take_due_jobs_leases_and_finish_job_removes(local_fs):
    files = _queue_three(local_fs)
    due = [due for _, due, _ in run_transaction(local_fs.env.engine, records.list_gc_jobs)]
    assert run(local_fs, lambda ctx: take_due_jobs(ctx, due[0] - 1, 10)) == []
    taken = run(local_fs, lambda ctx: take_due_jobs(ctx, due[1], 10, lease_ns=10**8))
    assert [t.job.inode.id for t in taken] == [f.id for f in files[:2]]
    assert all(
        t.due_ns == due[1] + 10**8 and t.key == keys.gc_queue_key(t.due_ns, t.job.inode.id) for t in taken
    )
    # leased jobs are not due again until the lease runs out
    assert [t.job.inode.id for t in run(local_fs, lambda ctx: take_due_jobs(ctx, due[2], 10))] == [
        files[2].id
    ]
    assert run(local_fs, lambda ctx: finish_job(ctx, taken[0].key)) is True
    assert run(local_fs, lambda ctx: finish_job(ctx, taken[0].key)) is False
    assert sorted(gc_ids(local_fs)) == sorted([files[1].id, files[2].id])


def test_take_without_lease_and_bad_arguments(local_fs):
    _queue_three(local_fs)
    rows = run_transaction(local_fs.env.engine, records.list_gc_jobs)
    taken = run(local_fs, lambda ctx: take_due_jobs(ctx, rows[-1][1], 2, lease_ns=0))
    assert [t.key for t in taken] == [key for key, _, _ in rows[:2]]
    with pytest.raises(ThreeFSError) as info:
        run(local_fs, lambda ctx: take_due_jobs(ctx, 0, 0))
    assert info.value.code == Code.INVALID_ARG
    with pytest.raises(ThreeFSError) as info:
        run(local_fs, lambda ctx: finish_job(ctx, keys.inode_key(5)))
    assert info.value.code == Code.INVALID_ARG
