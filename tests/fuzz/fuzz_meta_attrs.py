"""Invalid requests for meta's attribute and admin methods (SetAttr, Sync, GetRealPath,
SetLayout, GcList, Fsck, the xattr calls, StatFs): strategies that each draw a ``Case``."""

from __future__ import annotations

import msgspec
from fuzz_cluster import encode_body, wire_form
from fuzz_meta_places import (
    INVALID_BODY,
    NOT_FOUND,
    PERMISSION,
    ROOT,
    USER,
    Case,
    Tree,
    missing_places,
    mode_out_of_range,
    request_ids,
)
from hypothesis import strategies as st

from threefs.errors import Code
from threefs.layout import MAX_CHUNK_INDEX
from threefs.wire import meta as wire
from threefs.wire.meta import ROOT_INODE, Caller, PathAt


@st.composite
def set_attrs(draw: st.DrawFn, tree: Tree) -> Case:
    fields = {"request": draw(request_ids())}
    file = PathAt(ROOT_INODE, b"/file")
    kind = draw(
        st.sampled_from(
            [
                "place",
                "chmod",
                "chown",
                "chgrp",
                "times",
                "truncate dir",
                "truncate link",
                "truncate permission",
                "huge length",
                "truncate refused",
                "range",
            ]
        )
    )
    if kind == "truncate refused":  # USER may write /shared (0622) but not change these
        changes = draw(
            st.sampled_from(
                [
                    {"mode": 0o666},
                    {"uid": 1000},
                    {"gid": 1000},
                    {"mtime": wire.TimeSpec(ns=5)},
                    {"atime": wire.TimeSpec(ns=0)},
                ]
            )
        )
        at = PathAt(ROOT_INODE, b"/shared")
        request = wire.SetAttrRequest(
            at=at, length=draw(st.integers(0, 2**30)), caller=USER, **changes, **fields
        )
        return Case(f"{kind}: {sorted(changes)}", request, frozenset({Code.META_NOT_PERMITTED}))
    if kind == "place":
        place = draw(missing_places(tree))
        request = wire.SetAttrRequest(at=place.at, mode=0o600, caller=place.caller, **fields)
        return Case(place.what, request, place.expect)
    if kind == "chmod":
        request = wire.SetAttrRequest(at=file, mode=draw(st.integers(0, 0o7777)), caller=USER, **fields)
        return Case(kind, request, frozenset({Code.META_NOT_PERMITTED}))
    if kind == "chown":
        request = wire.SetAttrRequest(at=file, uid=draw(st.integers(1, 2**32 - 1)), caller=USER, **fields)
        return Case(kind, request, frozenset({Code.META_NOT_PERMITTED}))
    if kind == "chgrp":
        request = wire.SetAttrRequest(at=file, gid=draw(st.integers(1, 999)), caller=USER, **fields)
        return Case(kind, request, frozenset({Code.META_NOT_PERMITTED}))
    if kind == "times":
        spec = wire.TimeSpec(ns=draw(st.integers(-(2**63), 2**63 - 1)))
        request = wire.SetAttrRequest(at=file, mtime=spec, caller=USER, **fields)
        return Case(kind, request, frozenset({Code.META_NOT_PERMITTED}))
    if kind == "truncate dir":
        at = draw(
            st.sampled_from(
                [PathAt(ROOT_INODE, b"/dir"), PathAt(ROOT_INODE, b"/link"), PathAt(ROOT_INODE, b"/")]
            )
        )
        request = wire.SetAttrRequest(at=at, length=draw(st.integers(0, 2**64 - 1)), caller=ROOT, **fields)
        return Case(kind, request, frozenset({Code.META_IS_DIRECTORY}))
    if kind == "truncate link":
        request = wire.SetAttrRequest(
            at=PathAt(ROOT_INODE, b"/link"),
            follow=False,
            length=draw(st.integers(0, 2**40)),
            caller=ROOT,
            **fields,
        )
        return Case(kind, request, frozenset({Code.INVALID_ARG}))
    if kind == "truncate permission":
        request = wire.SetAttrRequest(at=file, length=draw(st.integers(0, 2**40)), caller=USER, **fields)
        return Case(kind, request, frozenset({Code.META_PERMISSION_DENIED}))
    if kind == "huge length":
        length = draw(st.integers((MAX_CHUNK_INDEX + 1) * tree.chunk_size + 1, 2**64 - 1))
        request = wire.SetAttrRequest(at=file, length=length, caller=ROOT, **fields)
        return Case(kind, request, frozenset({Code.INVALID_ARG}))
    field = draw(st.sampled_from(["mode", "uid", "gid", "atime", "mtime", "length"]))
    values: dict[str, object] = {
        "mode": draw(mode_out_of_range()),
        "uid": draw(st.sampled_from([-1, 2**32, 2**64 - 1])),
        "gid": draw(st.sampled_from([-1, 2**32, 2**64 - 1])),
        "atime": wire.TimeSpec(ns=draw(st.sampled_from([2**63, 2**64 - 1]))),
        "mtime": wire.TimeSpec(ns=draw(st.sampled_from([2**63, 2**64 - 1]))),
        "length": -1,
    }
    return Case(
        f"{field} out of range",
        wire.SetAttrRequest(at=file, caller=ROOT, **{field: values[field]}, **fields),
        INVALID_BODY,
    )


@st.composite
def syncs(draw: st.DrawFn, tree: Tree) -> Case:
    fields = {"request": draw(request_ids())}
    kind = draw(
        st.sampled_from(
            [
                "unknown",
                "directory",
                "symlink",
                "stale session",
                "close without session",
                "permission",
                "huge hint",
            ]
        )
    )
    hint = draw(st.none() | st.integers(0, 2**64 - 1))
    if kind == "unknown":
        request = wire.SyncRequest(inode=draw(tree.unknown_inodes), length_hint=hint, caller=ROOT, **fields)
        return Case(kind, request, NOT_FOUND)
    if kind == "directory":
        request = wire.SyncRequest(
            inode=draw(st.sampled_from([ROOT_INODE, tree.dir, tree.private])), caller=ROOT, **fields
        )
        return Case(kind, request, frozenset({Code.META_IS_DIRECTORY}))
    if kind == "symlink":
        request = wire.SyncRequest(inode=tree.link, length_hint=hint, caller=ROOT, **fields)
        return Case(kind, request, frozenset({Code.INVALID_ARG}))
    if kind == "stale session":
        session = draw(st.binary(min_size=1, max_size=64))
        request = wire.SyncRequest(
            inode=tree.file,
            session_id=session,
            length_hint=hint,
            wrote=draw(st.booleans()),
            close=draw(st.booleans()),
            caller=ROOT,
            **fields,
        )
        return Case(kind, request, frozenset({Code.META_STALE_SESSION}))
    if kind == "close without session":
        request = wire.SyncRequest(inode=tree.file, length_hint=hint, close=True, caller=ROOT, **fields)
        return Case(kind, request, frozenset({Code.INVALID_ARG}))
    if kind == "permission":
        request = wire.SyncRequest(inode=tree.file, length_hint=hint, wrote=True, caller=USER, **fields)
        return Case(kind, request, frozenset({Code.META_PERMISSION_DENIED}))
    length = draw(st.integers((MAX_CHUNK_INDEX + 1) * tree.chunk_size + 1, 2**64 - 1))
    request = wire.SyncRequest(inode=tree.file, length_hint=length, caller=ROOT, **fields)
    return Case(kind, request, frozenset({Code.INVALID_ARG}))


@st.composite
def real_paths(draw: st.DrawFn, tree: Tree) -> Case:
    place = draw(missing_places(tree))
    return Case(place.what, wire.GetRealPathRequest(at=place.at, caller=place.caller), place.expect)


def layout_form(tree: Tree, **changes: int) -> dict[str, int]:
    """A layout in wire form (a plain map, so values out of range can be sent)."""
    form = {
        "table_id": tree.table_id,
        "table_version": tree.table_version,
        "chunk_size": tree.chunk_size,
        "stripe_size": 1,
        "base_index": 0,
        "seed": 0,
    }
    return {**form, **changes}


@st.composite
def set_layouts(draw: st.DrawFn, tree: Tree) -> Case:
    request_id = wire_form(draw(request_ids()))
    dir_at = wire_form(PathAt(ROOT_INODE, b"/dir"))
    kind = draw(
        st.sampled_from(
            ["table", "version", "stripe", "base", "place", "not a directory", "permission", "range"]
        )
    )
    layout = layout_form(tree)
    at, caller, codes = dir_at, ROOT, frozenset({Code.META_BAD_LAYOUT})
    if kind == "table":
        layout["table_id"] = draw(st.integers(tree.table_id + 1, 2**32 - 1))
    elif kind == "version":
        layout["table_version"] = draw(st.integers(tree.table_version + 1, 2**32 - 1))
    elif kind == "stripe":
        layout["stripe_size"] = draw(st.integers(tree.chains + 1, 2**32 - 1))
    elif kind == "base":
        layout["base_index"] = draw(st.integers(tree.chains, 2**32 - 1))
    elif kind == "place":
        place = draw(missing_places(tree))
        at, caller, codes = wire_form(place.at), place.caller, place.expect
    elif kind == "not a directory":
        at = wire_form(PathAt(ROOT_INODE, draw(st.sampled_from([b"/file", b"/dir/file", b"/dangling"]))))
        codes = frozenset({Code.META_NOT_DIRECTORY, Code.META_NOT_FOUND})
    elif kind == "permission":
        caller, codes = USER, PERMISSION
    else:
        name = draw(st.sampled_from(["table_id", "table_version", "chunk_size", "stripe_size", "base_index"]))
        bad = {"chunk_size": st.sampled_from([0, 4096, (64 << 10) - 1, (64 << 20) + 1, -1])}.get(
            name,
            st.sampled_from([0, -1, 2**32, 2**64 - 1])
            if name != "base_index"
            else st.sampled_from([-1, 2**32]),
        )
        layout[name] = draw(bad)
        codes = INVALID_BODY
    body = {"at": at, "layout": layout, "request": request_id, "caller": wire_form(caller)}
    return Case(kind, msgspec.Raw(encode_body(body)), codes)


@st.composite
def gc_lists(draw: st.DrawFn, tree: Tree) -> Case:
    if draw(st.booleans()):
        return Case(
            "not admin",
            wire.GcListRequest(caller=draw(st.sampled_from([USER, Caller(uid=0, gid=0)]))),
            frozenset({Code.META_NOT_PERMITTED}),
        )
    return Case(
        "limit",
        wire.GcListRequest(limit=draw(st.sampled_from([0, -1, 10_001, 2**64 - 1])), caller=ROOT),
        INVALID_BODY,
    )


@st.composite
def fscks(draw: st.DrawFn, tree: Tree) -> Case:
    caller = draw(st.sampled_from([USER, Caller(uid=0, gid=0), Caller(uid=1000, gid=0, groups=[0])]))
    return Case(
        "not admin",
        wire.FsckRequest(repair=draw(st.booleans()), caller=caller),
        frozenset({Code.META_NOT_PERMITTED}),
    )


@st.composite
def xattr_names(draw: st.DrawFn) -> tuple[bytes, frozenset[Code]]:
    """An xattr name that no operation may take."""
    kind = draw(st.sampled_from(["empty", "bare prefix", "nul", "long", "namespace", "huge"]))
    if kind == "empty":
        return b"", frozenset({Code.META_XATTR_NAME_INVALID})
    if kind == "bare prefix":
        return draw(st.sampled_from([b"user.", b"trusted.", b"security."])), frozenset(
            {Code.META_XATTR_NAME_INVALID}
        )
    if kind == "nul":
        return b"user.a\x00b", frozenset({Code.META_XATTR_NAME_INVALID})
    if kind == "long":
        return b"user." + b"x" * draw(st.integers(251, 4091)), frozenset({Code.META_XATTR_NAME_INVALID})
    if kind == "namespace":
        name = draw(st.sampled_from([b"system.posix_acl_access", b"other.x", b"x", b"USER.x", b"user"]))
        return name, frozenset({Code.META_XATTR_UNSUPPORTED})
    return b"user." + b"x" * draw(st.integers(4092, 9000)), INVALID_BODY


@st.composite
def get_xattrs(draw: st.DrawFn, tree: Tree) -> Case:
    kind = draw(st.sampled_from(["name", "absent", "place", "permission"]))
    file = PathAt(ROOT_INODE, b"/file")
    if kind == "name":
        name, codes = draw(xattr_names())
        return Case(kind, wire.GetXattrRequest(at=file, name=name, caller=ROOT), codes)
    if kind == "absent":
        name = draw(st.sampled_from([b"user.nope", b"trusted.k", b"security.k", b"user.K"]))
        at = draw(st.sampled_from([file, PathAt(ROOT_INODE, b"/dir"), PathAt(ROOT_INODE, b"/link")]))
        return Case(
            kind, wire.GetXattrRequest(at=at, name=name, caller=ROOT), frozenset({Code.META_NO_XATTR})
        )
    if kind == "permission":
        request = wire.GetXattrRequest(at=PathAt(ROOT_INODE, b"/private/f"), name=b"user.k", caller=USER)
        return Case(kind, request, frozenset({Code.META_PERMISSION_DENIED}))
    place = draw(missing_places(tree))
    return Case(
        place.what, wire.GetXattrRequest(at=place.at, name=b"user.k", caller=place.caller), place.expect
    )


@st.composite
def set_xattrs(draw: st.DrawFn, tree: Tree) -> Case:
    fields = {"request": draw(request_ids())}
    file = PathAt(ROOT_INODE, b"/file")
    kind = draw(
        st.sampled_from(
            ["name", "value", "huge value", "flags", "create", "replace", "permission", "place", "symlink"]
        )
    )
    if kind == "name":
        name, codes = draw(xattr_names())
        return Case(kind, wire.SetXattrRequest(at=file, name=name, value=b"v", caller=ROOT, **fields), codes)
    if kind == "value":
        value = b"v" * draw(st.integers((64 << 10) + 1, 1 << 20))
        return Case(
            kind,
            wire.SetXattrRequest(at=file, name=b"user.big", value=value, caller=ROOT, **fields),
            frozenset({Code.META_XATTR_TOO_LARGE}),
        )
    if kind == "huge value":
        value = b"v" * draw(st.integers((1 << 20) + 1, 2 << 20))
        return Case(
            kind,
            wire.SetXattrRequest(at=file, name=b"user.big", value=value, caller=ROOT, **fields),
            INVALID_BODY,
        )
    if kind == "flags":
        flags = draw(st.integers(0, 3)) | (1 << draw(st.integers(2, 31)))
        return Case(
            kind,
            wire.SetXattrRequest(at=file, name=b"user.k", value=b"w", flags=flags, caller=ROOT, **fields),
            frozenset({Code.INVALID_ARG}),
        )
    if kind == "create":
        request = wire.SetXattrRequest(
            at=file, name=b"user.k", value=b"w", flags=wire.XattrFlags.CREATE, caller=ROOT, **fields
        )
        return Case(kind, request, frozenset({Code.META_EXISTS}))
    if kind == "replace":
        request = wire.SetXattrRequest(
            at=file, name=b"user.new", value=b"w", flags=wire.XattrFlags.REPLACE, caller=ROOT, **fields
        )
        return Case(kind, request, frozenset({Code.META_NO_XATTR}))
    if kind == "permission":
        name = draw(st.sampled_from([b"user.k", b"trusted.k", b"security.k"]))
        request = wire.SetXattrRequest(at=file, name=name, value=b"w", caller=USER, **fields)
        return Case(kind, request, PERMISSION)
    if kind == "symlink":
        request = wire.SetXattrRequest(
            at=PathAt(ROOT_INODE, b"/link"), name=b"user.k", follow=False, caller=ROOT, **fields
        )
        return Case(kind, request, frozenset({Code.META_NOT_PERMITTED}))
    place = draw(missing_places(tree))
    request = wire.SetXattrRequest(at=place.at, name=b"user.k", value=b"w", caller=place.caller, **fields)
    return Case(place.what, request, place.expect)


@st.composite
def list_xattrs(draw: st.DrawFn, tree: Tree) -> Case:
    place = draw(missing_places(tree))
    return Case(place.what, wire.ListXattrRequest(at=place.at, caller=place.caller), place.expect)


@st.composite
def remove_xattrs(draw: st.DrawFn, tree: Tree) -> Case:
    fields = {"request": draw(request_ids())}
    file = PathAt(ROOT_INODE, b"/file")
    kind = draw(st.sampled_from(["name", "absent", "permission", "place"]))
    if kind == "name":
        name, codes = draw(xattr_names())
        return Case(kind, wire.RemoveXattrRequest(at=file, name=name, caller=ROOT, **fields), codes)
    if kind == "absent":
        name = draw(st.sampled_from([b"user.nope", b"trusted.k", b"security.k"]))
        return Case(
            kind,
            wire.RemoveXattrRequest(at=file, name=name, caller=ROOT, **fields),
            frozenset({Code.META_NO_XATTR}),
        )
    if kind == "permission":
        return Case(kind, wire.RemoveXattrRequest(at=file, name=b"user.k", caller=USER, **fields), PERMISSION)
    place = draw(missing_places(tree))
    return Case(
        place.what,
        wire.RemoveXattrRequest(at=place.at, name=b"user.k", caller=place.caller, **fields),
        place.expect,
    )


@st.composite
def stat_fses(draw: st.DrawFn, tree: Tree) -> Case:
    uid = draw(st.sampled_from([-1, 2**32, 2**64 - 1]))
    return Case("uid out of range", wire.StatFsRequest(caller=Caller(uid=uid)), INVALID_BODY)
