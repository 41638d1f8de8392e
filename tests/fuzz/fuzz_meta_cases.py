"""Invalid requests for meta's namespace methods (Stat .. List): hypothesis strategies that
each draw a ``Case``, a request and the codes that are right for it."""

from __future__ import annotations

from fuzz_meta_places import (
    INVALID_BODY,
    NOT_FOUND,
    ROOT,
    USER,
    Case,
    Tree,
    long_component,
    missing_places,
    mode_out_of_range,
    request_ids,
    taken_places,
)
from hypothesis import strategies as st

from threefs.errors import Code
from threefs.wire import meta as wire
from threefs.wire.meta import ROOT_INODE, Caller, InodeType, OpenFlags, PathAt


@st.composite
def stats(draw: st.DrawFn, tree: Tree) -> Case:
    follow = draw(st.booleans())
    place = draw(missing_places(tree, follow=follow))
    return Case(place.what, wire.StatRequest(at=place.at, follow=follow, caller=place.caller), place.expect)


@st.composite
def lookups(draw: st.DrawFn, tree: Tree) -> Case:
    kind = draw(
        st.sampled_from(["unknown parent", "parent is a file", "bad name", "missing", "private", "huge"])
    )
    parent, caller = draw(st.sampled_from([ROOT_INODE, tree.dir, tree.sub])), ROOT
    if kind == "unknown parent":
        name, codes = b"x", NOT_FOUND
        parent = draw(tree.unknown_inodes)
    elif kind == "parent is a file":
        name, codes = b"x", frozenset({Code.META_NOT_DIRECTORY})
        parent = draw(st.sampled_from([tree.file, tree.link]))
    elif kind == "bad name":
        name = draw(
            st.sampled_from([b"", b"a/b", b"/", b"a\x00", b"\x00"])
            | long_component.filter(lambda n: len(n) <= 4096)
        )
        codes = frozenset({Code.META_INVALID_NAME if len(name) <= 255 else Code.META_NAME_TOO_LONG})
    elif kind == "missing":
        name, codes = draw(st.sampled_from([b"nothing", b"link2", b"...", b" "])), NOT_FOUND
    elif kind == "private":
        parent, name, caller = tree.private, b"f", USER
        codes = frozenset({Code.META_PERMISSION_DENIED})
    else:
        name, codes = b"n" * draw(st.integers(4097, 9000)), INVALID_BODY
    return Case(kind, wire.LookupRequest(parent=parent, name=name, caller=caller), codes)


@st.composite
def mknods(draw: st.DrawFn, tree: Tree) -> Case:
    kind = draw(st.sampled_from(["type", "device", "place", "mode", "bad type"]))
    fields = {"mode": 0o644, "request": draw(request_ids()), "caller": ROOT}
    new = PathAt(ROOT_INODE, b"/new-node")
    if kind == "type":
        node_type = draw(st.sampled_from([InodeType.DIRECTORY, InodeType.SYMLINK]))
        return Case(kind, wire.MknodRequest(at=new, type=node_type, **fields), frozenset({Code.INVALID_ARG}))
    if kind == "device":
        node_type = draw(st.sampled_from([InodeType.CHAR_DEVICE, InodeType.BLOCK_DEVICE]))
        fields["caller"] = Caller(uid=0, gid=0)  # uid 0 without the admin flag is not root
        request = wire.MknodRequest(at=new, type=node_type, rdev=draw(st.integers(0, 2**64 - 1)), **fields)
        return Case(kind, request, frozenset({Code.META_NOT_PERMITTED}))
    if kind == "mode":
        fields["mode"] = draw(mode_out_of_range())
        return Case(kind, wire.MknodRequest(at=new, type=InodeType.FILE, **fields), INVALID_BODY)
    if kind == "bad type":
        return Case(
            kind,
            wire.MknodRequest(at=new, type=draw(st.sampled_from([0, 8, 255, -1])), **fields),
            INVALID_BODY,
        )
    place = draw(taken_places(tree))
    node_type = draw(st.sampled_from([InodeType.FILE, InodeType.FIFO, InodeType.SOCKET]))
    fields["caller"] = place.caller
    return Case(place.what, wire.MknodRequest(at=place.at, type=node_type, **fields), place.expect)


WRITING = [OpenFlags.WRITE, OpenFlags.TRUNCATE, OpenFlags.APPEND, OpenFlags.WRITE | OpenFlags.TRUNCATE]


@st.composite
def opens(draw: st.DrawFn, tree: Tree) -> Case:
    kind = draw(
        st.sampled_from(
            [
                "flags",
                "missing",
                "exclusive",
                "directory",
                "permission",
                "nofollow",
                "mode",
                "create",
                "truncate refused",
            ]
        )
    )
    fields = {"request": draw(request_ids()), "caller": ROOT}
    if kind == "truncate refused":  # the file exists and may be written: only the open is wrong
        path = draw(st.sampled_from([b"/file", b"/shared", b"dir/file"]))
        why = draw(st.sampled_from(["exclusive", "flags", "no read"]))
        truncate = OpenFlags.TRUNCATE | draw(st.sampled_from([0, OpenFlags.WRITE]))
        if why == "exclusive":
            flags, codes = truncate | OpenFlags.CREATE | OpenFlags.EXCLUSIVE, {Code.META_EXISTS}
        elif why == "flags":
            flags, codes = truncate | (1 << draw(st.integers(6, 31))), {Code.INVALID_ARG}
        else:
            path, fields["caller"] = b"/shared", USER  # 0622: USER may write, not read
            flags, codes = truncate | OpenFlags.READ, {Code.META_PERMISSION_DENIED}
        request = wire.OpenRequest(at=PathAt(ROOT_INODE, path), flags=flags, **fields)
        return Case(f"{kind}: {why}", request, frozenset(codes))
    if kind == "flags":
        flags = draw(st.integers(0, 63)) | (1 << draw(st.integers(6, 31)))
        request = wire.OpenRequest(at=PathAt(ROOT_INODE, b"/file"), flags=flags, **fields)
        return Case(kind, request, frozenset({Code.INVALID_ARG}))
    if kind == "missing":
        flags = draw(st.sampled_from([OpenFlags.READ, *WRITING]))
        place = draw(missing_places(tree))
        fields["caller"] = place.caller
        return Case(place.what, wire.OpenRequest(at=place.at, flags=flags, **fields), place.expect)
    if kind == "exclusive":
        path = draw(st.sampled_from([b"/file", b"/dir", b"/link", b"/dangling", b"dir/file"]))
        flags = OpenFlags.CREATE | OpenFlags.EXCLUSIVE | draw(st.sampled_from([0, OpenFlags.WRITE]))
        return Case(
            kind,
            wire.OpenRequest(at=PathAt(ROOT_INODE, path), flags=flags, **fields),
            frozenset({Code.META_EXISTS}),
        )
    if kind == "directory":
        path = draw(st.sampled_from([b"/dir", b"/link", b"/", b"dir/sub/", b""]))
        flags = draw(st.sampled_from([*WRITING, OpenFlags.CREATE, OpenFlags.CREATE | OpenFlags.WRITE]))
        request = wire.OpenRequest(at=PathAt(ROOT_INODE, path), flags=flags, **fields)
        return Case(kind, request, frozenset({Code.META_IS_DIRECTORY}))
    if kind == "permission":
        fields["caller"] = USER
        path = draw(st.sampled_from([b"/file", b"/dir/file"]))
        flags = draw(st.sampled_from(WRITING)) | draw(st.sampled_from([0, OpenFlags.READ, OpenFlags.CREATE]))
        request = wire.OpenRequest(at=PathAt(ROOT_INODE, path), flags=flags, **fields)
        return Case(kind, request, frozenset({Code.META_PERMISSION_DENIED}))
    if kind == "nofollow":
        flags = draw(st.sampled_from([OpenFlags.READ, *WRITING]))
        path = draw(st.sampled_from([b"/link", b"/dangling", b"/loop1"]))
        request = wire.OpenRequest(at=PathAt(ROOT_INODE, path), flags=flags, follow=False, **fields)
        return Case(kind, request, frozenset({Code.META_LOOP}))
    if kind == "create":
        place = draw(taken_places(tree).filter(lambda p: p.what not in ("exists", "dots", "empty name")))
        fields["caller"] = place.caller
        flags = OpenFlags.CREATE | draw(st.sampled_from([0, OpenFlags.WRITE, OpenFlags.EXCLUSIVE]))
        return Case(place.what, wire.OpenRequest(at=place.at, flags=flags, **fields), place.expect)
    request = wire.OpenRequest(
        at=PathAt(ROOT_INODE, b"/file"), flags=OpenFlags.READ, mode=draw(mode_out_of_range()), **fields
    )
    return Case("mode", request, INVALID_BODY)


@st.composite
def mkdirs(draw: st.DrawFn, tree: Tree) -> Case:
    fields = {"request": draw(request_ids())}
    if draw(st.integers(0, 5)) == 0:
        request = wire.MkdirRequest(
            at=PathAt(ROOT_INODE, b"/new-dir"), mode=draw(mode_out_of_range()), caller=ROOT, **fields
        )
        return Case("mode", request, INVALID_BODY)
    place = draw(taken_places(tree))
    # mkdir -p accepts an existing directory and makes missing parents: only other failures
    recursive = place.what not in ("exists", "no parent", "dots", "empty name") and draw(st.booleans())
    request = wire.MkdirRequest(at=place.at, recursive=recursive, caller=place.caller, **fields)
    return Case(place.what, request, place.expect)


@st.composite
def symlinks(draw: st.DrawFn, tree: Tree) -> Case:
    fields = {"request": draw(request_ids())}
    kind = draw(st.sampled_from(["place", "empty target", "nul target", "long target", "huge target"]))
    new = PathAt(ROOT_INODE, b"/new-link")
    if kind == "empty target":
        return Case(kind, wire.SymlinkRequest(at=new, target=b"", caller=ROOT, **fields), NOT_FOUND)
    if kind == "nul target":
        target = draw(st.binary(max_size=8)) + b"\x00" + draw(st.binary(max_size=8))
        return Case(
            kind,
            wire.SymlinkRequest(at=new, target=target, caller=ROOT, **fields),
            frozenset({Code.META_INVALID_NAME}),
        )
    if kind == "long target":
        target = b"t" * draw(st.integers(4097, 8192))
        return Case(
            kind,
            wire.SymlinkRequest(at=new, target=target, caller=ROOT, **fields),
            frozenset({Code.META_PATH_TOO_LONG}),
        )
    if kind == "huge target":
        target = b"t" * draw(st.integers(8193, 20000))
        return Case(kind, wire.SymlinkRequest(at=new, target=target, caller=ROOT, **fields), INVALID_BODY)
    place = draw(taken_places(tree))
    request = wire.SymlinkRequest(at=place.at, target=b"dir", caller=place.caller, **fields)
    return Case(place.what, request, place.expect)


@st.composite
def readlinks(draw: st.DrawFn, tree: Tree) -> Case:
    if draw(st.booleans()):
        path = draw(st.sampled_from([b"/file", b"/dir", b"/", b"dir/sub", b"/link/file"]))
        return Case(
            "not a symlink",
            wire.ReadlinkRequest(at=PathAt(ROOT_INODE, path), caller=ROOT),
            frozenset({Code.INVALID_ARG}),
        )
    place = draw(missing_places(tree, follow=False))
    return Case(place.what, wire.ReadlinkRequest(at=place.at, caller=place.caller), place.expect)


@st.composite
def hard_links(draw: st.DrawFn, tree: Tree) -> Case:
    fields = {"request": draw(request_ids())}
    kind = draw(st.sampled_from(["old missing", "old is a directory", "new taken"]))
    if kind == "old missing":
        place = draw(missing_places(tree, follow=False))
        request = wire.HardLinkRequest(
            old=place.at, new=PathAt(ROOT_INODE, b"/new-hard"), caller=place.caller, **fields
        )
        return Case(place.what, request, place.expect)
    if kind == "old is a directory":
        old = PathAt(ROOT_INODE, draw(st.sampled_from([b"/dir", b"/dir/sub", b"/"])))
        request = wire.HardLinkRequest(old=old, new=PathAt(ROOT_INODE, b"/new-hard"), caller=ROOT, **fields)
        return Case(kind, request, frozenset({Code.META_NOT_PERMITTED}))
    place = draw(taken_places(tree).filter(lambda p: p.what != "private"))
    old = PathAt(ROOT_INODE, b"/file") if place.caller == ROOT else PathAt(ROOT_INODE, b"/dir/file")
    request = wire.HardLinkRequest(old=old, new=place.at, caller=place.caller, **fields)
    return Case(place.what, request, place.expect)


@st.composite
def removes(draw: st.DrawFn, tree: Tree) -> Case:
    fields = {"request": draw(request_ids())}
    kind = draw(
        st.sampled_from(
            ["missing", "is a directory", "not a directory", "not empty", "root", "dots", "permission"]
        )
    )
    at = lambda path: PathAt(ROOT_INODE, path)  # noqa: E731
    if kind == "missing":
        place = draw(
            missing_places(tree, follow=False).filter(
                lambda p: p.what != "loop" or not p.at.path.endswith(b"/")
            )
        )
        request = wire.RemoveRequest(
            at=place.at, directory=draw(st.booleans()), caller=place.caller, **fields
        )
        return Case(place.what, request, place.expect)
    if kind == "is a directory":
        request = wire.RemoveRequest(
            at=at(draw(st.sampled_from([b"/dir", b"/dir/sub", b"/private"]))), caller=ROOT, **fields
        )
        return Case(kind, request, frozenset({Code.META_IS_DIRECTORY}))
    if kind == "not a directory":
        path = draw(st.sampled_from([b"/file", b"/link", b"/dir/file", b"/dangling"]))
        request = wire.RemoveRequest(
            at=at(path), directory=True, recursive=draw(st.booleans()), caller=ROOT, **fields
        )
        return Case(kind, request, frozenset({Code.META_NOT_DIRECTORY}))
    if kind == "not empty":
        request = wire.RemoveRequest(
            at=at(draw(st.sampled_from([b"/dir", b"/private"]))), directory=True, caller=ROOT, **fields
        )
        return Case(kind, request, frozenset({Code.META_NOT_EMPTY}))
    if kind in ("root", "dots"):
        path = draw(st.sampled_from([b"/", b"", b".", b"..", b"/dir/.", b"dir/..", b"//"]))
        request = wire.RemoveRequest(
            at=at(path), directory=draw(st.booleans()), recursive=draw(st.booleans()), caller=ROOT, **fields
        )
        return Case(kind, request, frozenset({Code.META_INVALID_NAME, Code.META_BUSY}))
    path, directory = draw(
        st.sampled_from([(b"/file", False), (b"/dir", True), (b"/dir/file", False), (b"/link", False)])
    )
    request = wire.RemoveRequest(at=at(path), directory=directory, recursive=directory, caller=USER, **fields)
    return Case(kind, request, frozenset({Code.META_PERMISSION_DENIED}))


@st.composite
def renames(draw: st.DrawFn, tree: Tree) -> Case:
    fields = {"request": draw(request_ids())}
    at = lambda path: PathAt(ROOT_INODE, path)  # noqa: E731
    kind = draw(
        st.sampled_from(
            [
                "src missing",
                "flags",
                "both flags",
                "noreplace",
                "exchange missing",
                "under itself",
                "dir over file",
                "file over dir",
                "over non-empty",
                "dst taken",
                "permission",
            ]
        )
    )
    if kind == "src missing":
        place = draw(
            missing_places(tree, follow=False).filter(
                lambda p: p.what != "loop" or not p.at.path.endswith(b"/")
            )
        )
        request = wire.RenameRequest(src=place.at, dst=at(b"/renamed"), caller=place.caller, **fields)
        return Case(place.what, request, place.expect)
    if kind == "flags":
        flags = draw(st.integers(0, 3)) | (1 << draw(st.integers(2, 31)))
        request = wire.RenameRequest(
            src=at(b"/file"), dst=at(b"/renamed"), flags=flags, caller=ROOT, **fields
        )
        return Case(kind, request, frozenset({Code.INVALID_ARG}))
    if kind == "both flags":
        request = wire.RenameRequest(src=at(b"/file"), dst=at(b"/dir/file"), flags=3, caller=ROOT, **fields)
        return Case(kind, request, frozenset({Code.INVALID_ARG}))
    if kind == "noreplace":
        src, dst = draw(
            st.sampled_from([(b"/file", b"/dir/file"), (b"/dir/sub", b"/private"), (b"/link", b"/loop1")])
        )
        request = wire.RenameRequest(
            src=at(src), dst=at(dst), flags=wire.RenameFlags.NOREPLACE, caller=ROOT, **fields
        )
        return Case(kind, request, frozenset({Code.META_EXISTS}))
    if kind == "exchange missing":
        request = wire.RenameRequest(
            src=at(b"/file"), dst=at(b"/nothing"), flags=wire.RenameFlags.EXCHANGE, caller=ROOT, **fields
        )
        return Case(kind, request, NOT_FOUND)
    if kind == "under itself":
        src, dst = draw(
            st.sampled_from([(b"/dir", b"/dir/sub/x"), (b"/dir", b"/dir/x"), (b"dir", b"link/sub/x")])
        )
        request = wire.RenameRequest(src=at(src), dst=at(dst), caller=ROOT, **fields)
        return Case(kind, request, frozenset({Code.META_INVALID_NAME}))
    if kind == "dir over file":
        request = wire.RenameRequest(
            src=at(b"/dir/sub"), dst=at(draw(st.sampled_from([b"/file", b"/link"]))), caller=ROOT, **fields
        )
        return Case(kind, request, frozenset({Code.META_NOT_DIRECTORY}))
    if kind == "file over dir":
        request = wire.RenameRequest(
            src=at(b"/file"), dst=at(draw(st.sampled_from([b"/dir/sub", b"/private"]))), caller=ROOT, **fields
        )
        return Case(kind, request, frozenset({Code.META_IS_DIRECTORY}))
    if kind == "over non-empty":
        request = wire.RenameRequest(src=at(b"/dir/sub"), dst=at(b"/private"), caller=ROOT, **fields)
        return Case(kind, request, frozenset({Code.META_NOT_EMPTY}))
    if kind == "dst taken":
        place = draw(taken_places(tree).filter(lambda p: p.what not in ("exists", "private", "root dir")))
        request = wire.RenameRequest(src=at(b"/dir/file"), dst=place.at, caller=place.caller, **fields)
        dots = place.what in ("dots", "empty name")  # rename answers INVALID_NAME, not EXISTS
        return Case(place.what, request, place.expect | {Code.META_INVALID_NAME} if dots else place.expect)
    src, dst = draw(
        st.sampled_from([(b"/file", b"/renamed"), (b"/dir/file", b"/dir/renamed"), (b"/private/f", b"/x")])
    )
    request = wire.RenameRequest(src=at(src), dst=at(dst), caller=USER, **fields)
    return Case(kind, request, frozenset({Code.META_PERMISSION_DENIED}))


@st.composite
def lists(draw: st.DrawFn, tree: Tree) -> Case:
    kind = draw(st.sampled_from(["place", "not a directory", "limit", "after"]))
    if kind == "place":
        place = draw(missing_places(tree))
        return Case(place.what, wire.ListRequest(at=place.at, caller=place.caller), place.expect)
    if kind == "not a directory":
        at = draw(
            st.sampled_from([PathAt(ROOT_INODE, b"/file"), PathAt(tree.file, b""), PathAt(tree.link, b"")])
        )
        return Case(kind, wire.ListRequest(at=at, caller=ROOT), frozenset({Code.META_NOT_DIRECTORY}))
    if kind == "limit":
        limit = draw(st.sampled_from([0, -1, 10_001, 2**32, 2**64 - 1]))
        return Case(
            kind, wire.ListRequest(at=PathAt(ROOT_INODE, b"/dir"), limit=limit, caller=ROOT), INVALID_BODY
        )
    after = b"a" * draw(st.integers(4097, 9000))
    return Case(
        kind, wire.ListRequest(at=PathAt(ROOT_INODE, b"/dir"), after=after, caller=ROOT), INVALID_BODY
    )
