"""The meta fuzz tests' world: a small tree made through the ordinary client (``build_tree``),
and strategies for places that name nothing usable (``missing_places``) or where nothing can be
made (``taken_places``), each with the codes a request aimed there must fail with.

The tree: ``/dir/{file,sub}``, ``/file`` (data, xattr ``user.k``), ``/shared`` (data; mode 0622:
others may write but not read), symlinks ``/link -> dir``, ``/loop1 <-> /loop2``,
``/dangling -> nowhere``, and ``/private`` (0700) holding ``f``; everything owned by root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import msgspec
from fuzz_cluster import CHUNK, FuzzCluster
from hypothesis import strategies as st

from client.meta import MetaClient
from client.mgmtd import MgmtdClient
from client.routing import RoutingCache
from client.storage import StorageClient
from threefs.errors import Code
from threefs.kv import Prefix
from threefs.kv.keys import parse_inode_key
from threefs.wire.meta import ROOT_INODE, Caller, PathAt, RequestId

__all__ = [
    "INVALID_BODY",
    "NOT_FOUND",
    "PERMISSION",
    "ROOT",
    "SETUP_CLIENT_ID",
    "USER",
    "Case",
    "Place",
    "Tree",
    "bad_paths",
    "build_tree",
    "long_component",
    "missing_places",
    "mode_out_of_range",
    "request_ids",
    "taken_places",
]

ROOT = Caller(uid=0, gid=0, admin=True)
USER = Caller(uid=1000, gid=1000, groups=[1000])
INVALID_BODY = frozenset({Code.RPC_INVALID_BODY})
NOT_FOUND = frozenset({Code.META_NOT_FOUND})
PERMISSION = frozenset({Code.META_PERMISSION_DENIED, Code.META_NOT_PERMITTED})


@dataclass(frozen=True)
class Tree:
    """The inode ids of the tree made for the module, and every inode id in use."""

    dir: int
    sub: int
    inner_file: int
    file: int
    link: int
    private: int
    chunk_size: int
    table_id: int
    table_version: int
    chains: int
    inodes: frozenset[int]
    setup_seqs: int  # request ids (SETUP_CLIENT_ID, 1 .. setup_seqs) are recorded

    @property
    def unknown_inodes(self) -> st.SearchStrategy[int]:
        edges = st.sampled_from([2, 999_999, 2**32, 2**63, 2**64 - 1])
        return (edges | st.integers(2, 2**64 - 1)).filter(lambda n: n not in self.inodes)


@dataclass(frozen=True)
class Case:
    """One invalid request and the codes that are right for it."""

    what: str
    request: msgspec.Struct | msgspec.Raw
    expect: frozenset[Code]


@dataclass(frozen=True)
class Place:
    """Where a request points, as whom, and what the request must then fail with."""

    what: str
    at: PathAt
    caller: Caller
    expect: frozenset[Code]


SETUP_CLIENT_ID = b"fuzz-tree-setup!"  # the request ids of the tree's making: (this, 1..n)


async def build_tree(cluster: FuzzCluster) -> Tree:
    """Make the tree of the module docstring (files hold data on storage) and return its ids."""
    rpc = cluster.rpc
    assert rpc is not None
    meta = MetaClient(rpc, addresses=[cluster.meta_address], caller=ROOT, client_id=SETUP_CLIENT_ID)
    routing = RoutingCache(MgmtdClient([cluster.mgmtd_address], rpc=rpc))
    await routing.refresh()
    storage = StorageClient(rpc, routing)
    directory = await meta.mkdir("/dir")
    sub = await meta.mkdir("/dir/sub")
    await meta.mkdir("/private", mode=0o700)
    files = {}
    for path, size, mode in (
        ("/dir/file", 100, 0o644),
        ("/file", 2 * CHUNK + 100, 0o644),
        ("/shared", CHUNK + 7, 0o622),
        ("/private/f", 10, 0o644),
    ):
        opened = await meta.create(path, mode)
        layout = opened.inode.layout
        assert layout is not None
        await storage.write(opened.inode.id, layout, 0, os.urandom(size))
        await meta.close(opened.inode.id, opened.session_id, length_hint=size, wrote=True)
        files[path] = opened.inode
    await meta.set_xattr("/file", b"user.k", b"v")
    link = await meta.symlink("/link", "dir")
    await meta.symlink("/loop1", "loop2")
    await meta.symlink("/loop2", "loop1")
    await meta.symlink("/dangling", "nowhere")
    private = await meta.stat("/private")
    layout = files["/file"].layout
    assert layout is not None
    records = await cluster.meta_records()
    return Tree(
        dir=directory.id,
        sub=sub.id,
        inner_file=files["/dir/file"].id,
        file=files["/file"].id,
        link=link.id,
        private=private.id,
        chunk_size=layout.chunk_size,
        table_id=layout.table_id,
        table_version=layout.table_version,
        chains=len(cluster.cluster.chain_ids),
        inodes=frozenset(parse_inode_key(key) for key in records if key.startswith(Prefix.INODE.value)),
        setup_seqs=meta.next_request_id().seq - 1,
    )


def request_ids() -> st.SearchStrategy[RequestId]:
    """Fresh request ids: random client ids (hypothesis would shrink drawn ones to one value,
    and a request accepted by mistake would then answer every later one with its record)."""
    return st.builds(lambda seq: RequestId(os.urandom(16), seq), st.integers(1, 2**64 - 1))


# ----------------------------------------------------------------------------- names and places

long_component = st.integers(256, 1000).map(lambda n: b"n" * n)


@st.composite
def bad_paths(draw: st.DrawFn) -> tuple[str, bytes, frozenset[Code]]:
    """A path that is wrong in itself, wherever it points: ``(what, path, codes)``."""
    prefix = draw(st.sampled_from([b"", b"/", b"dir/", b"/dir/sub/"]))
    kind = draw(st.sampled_from(["long name", "nul", "long path", "huge path"]))
    if kind == "long name":
        return (
            kind,
            prefix + draw(long_component) + draw(st.sampled_from([b"", b"/x"])),
            frozenset({Code.META_NAME_TOO_LONG}),
        )
    if kind == "nul":
        name = draw(st.binary(max_size=5)) + b"\x00" + draw(st.binary(max_size=5))
        return kind, prefix + name.replace(b"/", b"_"), frozenset({Code.META_INVALID_NAME})
    if kind == "long path":
        size = draw(st.integers(4097, 8192 - len(prefix)))
        return kind, prefix + (b"a/" * size)[:size], frozenset({Code.META_PATH_TOO_LONG})
    size = draw(st.integers(8193, 20000))
    return kind, (b"a/" * size)[:size], INVALID_BODY


@st.composite
def missing_places(draw: st.DrawFn, tree: Tree, *, follow: bool = True) -> Place:
    """Somewhere that names nothing usable: an error for any operation on an existing object.
    ``follow``: the operation follows a final symlink (a loop at the end then fails too)."""
    kinds = ["bad path", "unknown parent", "parent is a file", "missing", "through a file", "loop", "private"]
    if follow:
        kinds.append("final loop")
    kind = draw(st.sampled_from(kinds))
    if kind == "bad path":
        what, path, codes = draw(bad_paths())
        return Place(what, PathAt(ROOT_INODE, path), ROOT, codes)
    if kind == "unknown parent":
        path = draw(st.sampled_from([b"", b"x", b"a/b", b".", b".."]))
        return Place(kind, PathAt(draw(tree.unknown_inodes), path), ROOT, NOT_FOUND)
    if kind == "parent is a file":
        parent = draw(st.sampled_from([tree.file, tree.inner_file]))
        path = draw(st.sampled_from([b"x", b"a/b", b".", b"..", b"x/"]))
        return Place(kind, PathAt(parent, path), ROOT, frozenset({Code.META_NOT_DIRECTORY}))
    if kind == "missing":
        path = draw(
            st.sampled_from([b"/nothing", b"dir/nothing", b"/dir/sub/nothing", b"/nothing/x", b"dangling/x"])
        )
        return Place(kind, PathAt(ROOT_INODE, path), ROOT, NOT_FOUND)
    if kind == "through a file":
        path = draw(st.sampled_from([b"/file/x", b"/dir/file/", b"file/.", b"/dir/file/sub/x"]))
        return Place(kind, PathAt(ROOT_INODE, path), ROOT, frozenset({Code.META_NOT_DIRECTORY}))
    if kind == "loop":
        path = draw(st.sampled_from([b"/loop1/x", b"loop2/a/b", b"/loop1/"]))
        return Place(kind, PathAt(ROOT_INODE, path), ROOT, frozenset({Code.META_LOOP}))
    if kind == "final loop":
        return Place(
            kind,
            PathAt(ROOT_INODE, draw(st.sampled_from([b"/loop1", b"loop2"]))),
            ROOT,
            frozenset({Code.META_LOOP}),
        )
    path = draw(st.sampled_from([b"/private/f", b"/private/x", b"/private/f/", b"private/./f"]))
    return Place(kind, PathAt(ROOT_INODE, path), USER, frozenset({Code.META_PERMISSION_DENIED}))


@st.composite
def taken_places(draw: st.DrawFn, tree: Tree) -> Place:
    """Somewhere a new entry cannot be made (``.``, ``..`` and the root: META_EXISTS from the
    calls that create, as POSIX says for mkdir, or META_INVALID_NAME)."""
    kind = draw(
        st.sampled_from(
            [
                "bad path",
                "unknown parent",
                "parent is a file",
                "no parent",
                "exists",
                "dots",
                "private",
                "root dir",
                "empty name",
            ]
        )
    )
    if kind == "exists":
        path = draw(
            st.sampled_from([b"/dir", b"/file", b"/link", b"dir/sub", b"/dir/file", b"loop1", b"dangling"])
        )
        return Place(kind, PathAt(ROOT_INODE, path), ROOT, frozenset({Code.META_EXISTS}))
    if kind == "dots":
        path = draw(st.sampled_from([b".", b"..", b"/dir/.", b"dir/..", b"/"]))
        return Place(
            kind, PathAt(ROOT_INODE, path), ROOT, frozenset({Code.META_EXISTS, Code.META_INVALID_NAME})
        )
    if kind == "empty name":
        parent = draw(st.sampled_from([ROOT_INODE, tree.dir, tree.sub]))
        return Place(kind, PathAt(parent, b""), ROOT, frozenset({Code.META_EXISTS, Code.META_INVALID_NAME}))
    if kind == "no parent":
        path = draw(st.sampled_from([b"/nothing/x", b"dir/nothing/x", b"dangling/x"]))
        return Place(kind, PathAt(ROOT_INODE, path), ROOT, NOT_FOUND)
    if kind == "private":
        return Place(
            kind, PathAt(ROOT_INODE, b"/private/new"), USER, frozenset({Code.META_PERMISSION_DENIED})
        )
    if kind == "root dir":  # 0755, owned by root: no w for others
        return Place(kind, PathAt(ROOT_INODE, b"/new"), USER, frozenset({Code.META_PERMISSION_DENIED}))
    if kind == "unknown parent":
        return Place(kind, PathAt(draw(tree.unknown_inodes), b"new"), ROOT, NOT_FOUND)
    if kind == "parent is a file":
        return Place(kind, PathAt(tree.file, b"new"), ROOT, frozenset({Code.META_NOT_DIRECTORY}))
    what, path, codes = draw(bad_paths())
    return Place(what, PathAt(ROOT_INODE, path), ROOT, codes)


def mode_out_of_range() -> st.SearchStrategy[int]:
    return st.sampled_from([0o10000, 0o177777, -1, 2**32, 2**64 - 1])
