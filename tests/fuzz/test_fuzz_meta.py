"""Fuzz every meta method over real sockets with invalid requests (``FuzzCluster.exercise``:
a clear error, the process alive and answering, no KV record changed and no chunk cut).

A small tree is made first (``fuzz_meta_places``); requests then aim at it and around it:

- names and paths: empty names, ``/`` or NUL in a name, ``.``/``..`` where an entry would be
  made or removed, components over 255 bytes, paths over 4096 (and over the 8192 the struct
  allows), symlink loops, a path through a file;
- ids: unknown inodes (as ``parent``, as ``inode``, up to 2**64 - 1), a file where a directory
  is needed and the reverse;
- rules: existing names, non-empty directories, a directory moved under itself, unknown flag
  bits, both rename flags, stale write sessions, a close without a session, permission as an
  unprivileged user, bad layouts (unknown table or version, stripes that do not fit), xattr
  names and values out of bounds, a file length past what its layout can address;
- integers out of range (modes over 0o7777, limits 0 or over 10000, times past int64);
- truncating opens and setattrs that are refused (an exclusive create, unknown flags, a
  missing read permission, a chmod or utime by a non-owner): they must not cut chunks first.

``test_bodies_that_do_not_decode`` sends, for every method, bodies that do not match the struct.
``test_batch_stat_reports_each_bad_item`` checks BatchStat's per-item codes;
``test_used_request_ids_answer_only_their_own_request`` sends invalid requests under request ids
that the tree's making used (INVALID_ARG, never the recorded answer of another request); and
``test_the_checks_catch_acceptance_and_changes`` shows that the harness fails a request that is
accepted or changes a record.
"""

from __future__ import annotations

import os

import msgspec
import pytest
from fuzz_bodies import invalid_bodies
from fuzz_cluster import FUZZ, FuzzCluster, encode_body, wire_form
from fuzz_meta_attrs import (
    fscks,
    gc_lists,
    get_xattrs,
    list_xattrs,
    real_paths,
    remove_xattrs,
    set_attrs,
    set_layouts,
    set_xattrs,
    stat_fses,
    syncs,
)
from fuzz_meta_cases import (
    hard_links,
    lists,
    lookups,
    mkdirs,
    mknods,
    opens,
    readlinks,
    removes,
    renames,
    stats,
    symlinks,
)
from fuzz_meta_places import (
    INVALID_BODY,
    NOT_FOUND,
    ROOT,
    SETUP_CLIENT_ID,
    USER,
    Tree,
    build_tree,
    missing_places,
)
from hypothesis import given
from hypothesis import strategies as st

from threefs.errors import Code
from threefs.layout import MAX_CHUNK_INDEX, Layout
from threefs.wire import meta as wire
from threefs.wire.common import MethodSpec
from threefs.wire.meta import ROOT_INODE, Caller, InodeType, OpenFlags, PathAt, RequestId

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tree(cluster: FuzzCluster) -> Tree:
    return cluster.run(build_tree, cluster)


INVALID = {
    wire.STAT_FS: stat_fses,
    wire.STAT: stats,
    wire.LOOKUP: lookups,
    wire.MKNOD: mknods,
    wire.OPEN: opens,
    wire.MKDIR: mkdirs,
    wire.SYMLINK: symlinks,
    wire.READLINK: readlinks,
    wire.HARD_LINK: hard_links,
    wire.REMOVE: removes,
    wire.RENAME: renames,
    wire.LIST: lists,
    wire.SET_ATTR: set_attrs,
    wire.SYNC: syncs,
    wire.GET_REAL_PATH: real_paths,
    wire.SET_LAYOUT: set_layouts,
    wire.GC_LIST: gc_lists,
    wire.FSCK: fscks,
    wire.GET_XATTR: get_xattrs,
    wire.SET_XATTR: set_xattrs,
    wire.LIST_XATTR: list_xattrs,
    wire.REMOVE_XATTR: remove_xattrs,
}
# Answers per item instead of failing: see test_batch_stat_reports_each_bad_item.
PER_ITEM = {wire.BATCH_STAT}

_ID = RequestId(b"0123456789abcdef", 7)
_AT = PathAt(ROOT_INODE, b"/x")
_CALLER = Caller(uid=1, gid=2, groups=[3], admin=True)
EXAMPLES: dict[MethodSpec, msgspec.Struct] = {
    wire.STAT_FS: wire.StatFsRequest(caller=_CALLER),
    wire.STAT: wire.StatRequest(at=_AT, follow=False, caller=_CALLER),
    wire.LOOKUP: wire.LookupRequest(parent=1, name=b"x", caller=_CALLER),
    wire.BATCH_STAT: wire.BatchStatRequest(inodes=[1, 2], paths=[_AT], caller=_CALLER),
    wire.MKNOD: wire.MknodRequest(
        at=_AT, type=InodeType.FIFO, mode=0o600, rdev=5, request=_ID, caller=_CALLER
    ),
    wire.OPEN: wire.OpenRequest(
        at=_AT, flags=3, mode=0o600, follow=False, client_node=9, request=_ID, caller=_CALLER
    ),
    wire.MKDIR: wire.MkdirRequest(at=_AT, mode=0o700, recursive=True, request=_ID, caller=_CALLER),
    wire.SYMLINK: wire.SymlinkRequest(at=_AT, target=b"t", request=_ID, caller=_CALLER),
    wire.READLINK: wire.ReadlinkRequest(at=_AT, caller=_CALLER),
    wire.HARD_LINK: wire.HardLinkRequest(old=_AT, new=_AT, request=_ID, caller=_CALLER),
    wire.REMOVE: wire.RemoveRequest(at=_AT, directory=True, recursive=True, request=_ID, caller=_CALLER),
    wire.RENAME: wire.RenameRequest(src=_AT, dst=_AT, flags=1, request=_ID, caller=_CALLER),
    wire.LIST: wire.ListRequest(at=_AT, after=b"a", limit=5, with_attrs=True, caller=_CALLER),
    wire.SET_ATTR: wire.SetAttrRequest(
        at=_AT,
        follow=False,
        mode=0o600,
        uid=1,
        gid=2,
        atime=wire.TimeSpec(5),
        mtime=wire.TimeSpec(0, True),
        length=9,
        request=_ID,
        caller=_CALLER,
    ),
    wire.SYNC: wire.SyncRequest(
        inode=5, session_id=b"s" * 16, length_hint=4, wrote=True, close=True, request=_ID, caller=_CALLER
    ),
    wire.GET_REAL_PATH: wire.GetRealPathRequest(at=_AT, caller=_CALLER),
    wire.SET_LAYOUT: wire.SetLayoutRequest(
        at=_AT,
        layout=Layout(table_id=1, table_version=1, stripe_size=2, base_index=1, seed=3),
        request=_ID,
        caller=_CALLER,
    ),
    wire.GC_LIST: wire.GcListRequest(limit=3, caller=_CALLER),
    wire.FSCK: wire.FsckRequest(repair=True, caller=_CALLER),
    wire.GET_XATTR: wire.GetXattrRequest(at=_AT, name=b"user.a", follow=False, caller=_CALLER),
    wire.SET_XATTR: wire.SetXattrRequest(
        at=_AT, name=b"user.a", value=b"v", flags=1, follow=False, request=_ID, caller=_CALLER
    ),
    wire.LIST_XATTR: wire.ListXattrRequest(at=_AT, follow=False, caller=_CALLER),
    wire.REMOVE_XATTR: wire.RemoveXattrRequest(
        at=_AT, name=b"user.a", follow=False, request=_ID, caller=_CALLER
    ),
}


def test_every_method_is_fuzzed():
    """A method added to the service must get an example and invalid requests, or this fails."""
    methods = set(wire.META_SERVICE.methods)
    assert set(EXAMPLES) == methods
    assert set(INVALID) | PER_ITEM == methods
    for spec in methods:
        assert type(EXAMPLES[spec]) is spec.request_type


@pytest.mark.parametrize("spec", sorted(INVALID, key=lambda s: s.method_id), ids=lambda s: s.name)
@FUZZ
@given(data=st.data())
def test_invalid_requests(cluster: FuzzCluster, tree: Tree, spec: MethodSpec, data: st.DataObject):
    item = data.draw(INVALID[spec](tree), label="case")
    cluster.exercise(
        "meta", cluster.meta_address, spec, encode_body(item.request), expect=item.expect, what=item.what
    )


@pytest.mark.parametrize("spec", sorted(EXAMPLES, key=lambda s: s.method_id), ids=lambda s: s.name)
@FUZZ
@given(data=st.data())
def test_bodies_that_do_not_decode(cluster: FuzzCluster, spec: MethodSpec, data: st.DataObject):
    body = data.draw(invalid_bodies(spec, EXAMPLES[spec]), label="body")
    cluster.exercise("meta", cluster.meta_address, spec, body, expect=INVALID_BODY)


@FUZZ
@given(data=st.data())
def test_batch_stat_reports_each_bad_item(cluster: FuzzCluster, tree: Tree, data: st.DataObject):
    """Unknown inode ids and places that name nothing each get a clear per-item code (and no
    inode); a bad path that cannot even be decoded fails the whole request."""
    inodes = data.draw(st.lists(tree.unknown_inodes, max_size=4), label="inodes")
    places = data.draw(
        st.lists(missing_places(tree).filter(lambda p: p.caller == ROOT), max_size=4), label="places"
    )
    request = wire.BatchStatRequest(inodes=inodes, paths=[p.at for p in places], caller=ROOT)
    reply = cluster.exercise_answer("meta", cluster.meta_address, wire.BATCH_STAT, encode_body(request))
    if any(p.expect == INVALID_BODY for p in places):
        assert reply.code == Code.RPC_INVALID_BODY, reply.describe()
        return
    assert reply.response is not None, reply.describe()
    expected = [NOT_FOUND] * len(inodes) + [p.expect for p in places]
    assert reply.response.inodes == [None] * len(expected)
    assert len(reply.response.codes) == len(expected)
    for code, allowed, what in zip(  # noqa: B905 (lengths checked above)
        reply.response.codes, expected, ["inode"] * len(inodes) + [p.what for p in places]
    ):
        assert code in allowed, f"{what}: {code} not in {sorted(c.name for c in allowed)}"


WITH_REQUEST_ID = sorted(
    (spec for spec in INVALID if "request" in {f.name for f in msgspec.structs.fields(spec.request_type)}),
    key=lambda s: s.method_id,
)


@pytest.mark.parametrize("spec", WITH_REQUEST_ID, ids=lambda s: s.name)
@FUZZ
@given(data=st.data())
def test_used_request_ids_answer_only_their_own_request(
    cluster: FuzzCluster, tree: Tree, spec: MethodSpec, data: st.DataObject
):
    """Another request under a recorded request id (of any method) is refused with
    INVALID_ARG: the record answers only a retry of its own request."""
    item = data.draw(INVALID[spec](tree), label="case")
    seq = data.draw(st.integers(1, tree.setup_seqs), label="seq")
    form = msgspec.msgpack.decode(encode_body(item.request))
    if not isinstance(form, dict) or "request" not in form:
        return  # the case breaks the body itself
    form["request"] = wire_form(RequestId(SETUP_CLIENT_ID, seq))
    expect = {Code.INVALID_ARG}
    if Code.RPC_INVALID_BODY in item.expect:  # the body does not decode: no id is looked at
        expect = set(INVALID_BODY)
    elif spec == wire.SET_LAYOUT:
        expect |= item.expect & {Code.META_BAD_LAYOUT}  # the layout is checked at mgmtd first
    cluster.exercise(
        "meta", cluster.meta_address, spec, encode_body(form), expect=expect, what=f"{item.what} (seq {seq})"
    )


# ----------------------------------------------------------------------------- regressions
# Each of these once went wrong: the request was refused only after its chunks were cut, was
# accepted, or got another request's recorded answer (INTERNAL when that did not decode).


def _id() -> RequestId:
    return RequestId(os.urandom(16), 1)


def test_an_exclusive_truncating_open_of_a_file_cuts_nothing(cluster: FuzzCluster, tree: Tree):
    flags = OpenFlags.CREATE | OpenFlags.EXCLUSIVE | OpenFlags.TRUNCATE | OpenFlags.WRITE
    request = wire.OpenRequest(at=PathAt(ROOT_INODE, b"/file"), flags=flags, request=_id(), caller=ROOT)
    cluster.exercise("meta", cluster.meta_address, wire.OPEN, encode_body(request), expect={Code.META_EXISTS})


def test_a_truncating_open_with_unknown_flags_cuts_nothing(cluster: FuzzCluster, tree: Tree):
    flags = OpenFlags.TRUNCATE | OpenFlags.WRITE | 1 << 20
    request = wire.OpenRequest(at=PathAt(ROOT_INODE, b"/file"), flags=flags, request=_id(), caller=ROOT)
    cluster.exercise("meta", cluster.meta_address, wire.OPEN, encode_body(request), expect={Code.INVALID_ARG})


def test_a_truncating_open_without_read_permission_cuts_nothing(cluster: FuzzCluster, tree: Tree):
    flags = OpenFlags.READ | OpenFlags.WRITE | OpenFlags.TRUNCATE  # /shared is 0622: USER may not read
    request = wire.OpenRequest(at=PathAt(ROOT_INODE, b"/shared"), flags=flags, request=_id(), caller=USER)
    expect = {Code.META_PERMISSION_DENIED}
    cluster.exercise("meta", cluster.meta_address, wire.OPEN, encode_body(request), expect=expect)


@pytest.mark.parametrize("change", ["mode", "uid", "mtime"])
def test_a_refused_truncating_setattr_cuts_nothing(cluster: FuzzCluster, tree: Tree, change: str):
    """USER may write /shared (so it may truncate it) but not chmod, chown or set its times."""
    value = {"mode": 0o666, "uid": 1000, "mtime": wire.TimeSpec(ns=5)}[change]
    request = wire.SetAttrRequest(
        at=PathAt(ROOT_INODE, b"/shared"), length=1, request=_id(), caller=USER, **{change: value}
    )
    expect = {Code.META_NOT_PERMITTED}
    cluster.exercise("meta", cluster.meta_address, wire.SET_ATTR, encode_body(request), expect=expect)


@pytest.mark.parametrize("method", ["sync", "setattr"])
def test_a_length_past_the_layout_limit_is_invalid(cluster: FuzzCluster, tree: Tree, method: str):
    length = (MAX_CHUNK_INDEX + 1) * tree.chunk_size + 1
    if method == "sync":
        spec, request = (
            wire.SYNC,
            wire.SyncRequest(inode=tree.file, length_hint=length, request=_id(), caller=ROOT),
        )
    else:
        at = PathAt(ROOT_INODE, b"/file")
        spec, request = wire.SET_ATTR, wire.SetAttrRequest(at=at, length=length, request=_id(), caller=ROOT)
    cluster.exercise("meta", cluster.meta_address, spec, encode_body(request), expect={Code.INVALID_ARG})


def test_a_request_id_used_by_another_method_is_refused(cluster: FuzzCluster, tree: Tree):
    """Seq 1 of the tree's client made /dir (a MkdirResponse, which an OpenResponse cannot
    decode); an open under that id is refused, and so is a mkdir of another path."""
    used = RequestId(SETUP_CLIENT_ID, 1)
    opened = wire.OpenRequest(
        at=PathAt(ROOT_INODE, b"/file"), flags=OpenFlags.READ, request=used, caller=ROOT
    )
    cluster.exercise("meta", cluster.meta_address, wire.OPEN, encode_body(opened), expect={Code.INVALID_ARG})
    made = wire.MkdirRequest(at=PathAt(ROOT_INODE, b"/other"), request=used, caller=ROOT)
    cluster.exercise("meta", cluster.meta_address, wire.MKDIR, encode_body(made), expect={Code.INVALID_ARG})


def test_a_retry_still_gets_the_first_answer(cluster: FuzzCluster, tree: Tree):
    """The same request under its own id (a retry) is answered from the record, unchanged."""
    request = wire.MkdirRequest(
        at=PathAt(ROOT_INODE, b"/dir"), request=RequestId(SETUP_CLIENT_ID, 1), caller=ROOT
    )
    reply = cluster.exercise_answer("meta", cluster.meta_address, wire.MKDIR, encode_body(request))
    assert reply.response is not None and reply.response.inode.id == tree.dir, reply.describe()


def test_the_checks_catch_acceptance_and_changes(cluster: FuzzCluster, tree: Tree):
    """The harness must fail a request that is accepted, and one that changes a record."""
    stat = wire.StatRequest(at=PathAt(ROOT_INODE, b"/file"), caller=ROOT)
    with pytest.raises(AssertionError, match="accepted"):
        cluster.exercise("meta", cluster.meta_address, wire.STAT, encode_body(stat))
    mkdir = wire.MkdirRequest(
        at=PathAt(ROOT_INODE, b"/harness"), request=RequestId(os.urandom(16), 1), caller=ROOT
    )
    with pytest.raises(AssertionError, match="changed meta's state"):
        cluster.exercise_answer("meta", cluster.meta_address, wire.MKDIR, encode_body(mkdir))
    remove = wire.RemoveRequest(
        at=PathAt(ROOT_INODE, b"/harness"), directory=True, request=RequestId(os.urandom(16), 1), caller=ROOT
    )
    reply = cluster.run(cluster.send_raw, cluster.meta_address, wire.REMOVE, encode_body(remove))
    assert reply.response is not None, reply.describe()
