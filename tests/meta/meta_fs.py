"""The synchronous driver of meta operations the meta tests share (fixtures in conftest.py).

``MetaFs`` runs each op through ``execute_op`` as one transaction with a fresh RequestId;
``expect_code`` checks a ``ThreeFSError``'s code; ``TEST_LAYOUT`` is the root's layout.
"""

from __future__ import annotations

import contextlib
import os
import random
import typing
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest

from meta.ops.context import MetaEnv, execute_op
from meta.ops.hard_link import hard_link
from meta.ops.list import list_dir
from meta.ops.mkdir import mkdir
from meta.ops.mknod import mknod
from meta.ops.open import open_file
from meta.ops.readlink import readlink
from meta.ops.real_path import get_real_path
from meta.ops.set_layout import set_layout
from meta.ops.stat import batch_stat, lookup, stat
from meta.ops.statfs import statfs
from meta.ops.symlink import symlink
from meta.store import records
from meta.store.alloc import InodeAllocator
from meta.store.root import ensure_root
from threefs.errors import Code, ThreeFSError
from threefs.kv import Engine, keys
from threefs.kv.retry import run_transaction
from threefs.layout import Layout
from threefs.wire import meta as wire
from threefs.wire.meta import ROOT_INODE, Caller, OpenFlags, PathAt, RequestId

TEST_LAYOUT = Layout(table_id=1, table_version=1, chunk_size=1 << 20, stripe_size=3)
ROOT = Caller(uid=0, gid=0, admin=True)
RW_CREATE = OpenFlags.READ | OpenFlags.WRITE | OpenFlags.CREATE


class TickClock:
    """A clock that moves one microsecond at each reading (``now`` is the last reading)."""

    def __init__(self, start_ns: int = 1_700_000_000 * 10**9) -> None:
        self.now = start_ns

    def __call__(self) -> int:
        self.now += 1000
        return self.now


def _at(path: str | bytes | PathAt, parent: int = ROOT_INODE) -> PathAt:
    if isinstance(path, PathAt):
        return path
    return PathAt(parent, os.fsencode(path))


class MetaFs:
    """Runs meta ops synchronously as ``caller``. Every method takes ``caller=`` (default: this
    object's) and the mutating ones ``request=`` (default: a fresh RequestId of ``client_id``);
    paths are ``str``/``bytes`` (relative to ``parent=``, default the root) or a ``PathAt``."""

    def __init__(self, env: MetaEnv, caller: Caller = ROOT, client_id: bytes | None = None) -> None:
        self.env = env
        self.caller = caller
        self.client_id = client_id or os.urandom(16)
        self._seq = 0

    # -------------------------------------------------------------------------------- plumbing

    def as_user(
        self, uid: int, gid: int | None = None, groups: tuple[int, ...] = (), admin: bool = False
    ) -> MetaFs:
        """The same file system seen by another caller (its own client id)."""
        caller = Caller(uid=uid, gid=uid if gid is None else gid, groups=list(groups), admin=admin)
        return MetaFs(self.env, caller)

    def request_id(self) -> RequestId:
        self._seq += 1
        return RequestId(self.client_id, self._seq)

    def call(self, fn: Callable[..., Any], request: Any, *, read_only: bool = False, **kwargs: Any) -> Any:
        """Run ``fn(ctx, request, **kwargs)`` as one op; a request carrying ``request`` (a
        RequestId) is recorded for idempotency with the response type ``fn`` declares."""
        response_type = typing.get_type_hints(fn)["return"]
        if not read_only:  # as the service does: ids in hand, no block taken inside the op
            self.env.allocator.reserve(300)
        return execute_op(
            self.env,
            lambda ctx: fn(ctx, request, **kwargs),
            caller=request.caller,
            request_id=getattr(request, "request", None),
            response_type=response_type,
            read_only=read_only,
        )

    def snapshot(self) -> dict[bytes, bytes]:
        """Every key and value except the inode allocator's (which a failed create may move)."""

        def read(txn: Any) -> dict[bytes, bytes]:
            return {
                k: v for k, v in txn.get_range(b"", b"\xff") if not k.startswith(keys.INODE_ALLOCATOR_KEY)
            }

        return run_transaction(self.env.engine, read)

    def patch_inode(self, inode: Any, **changes: Any) -> Any:
        """Overwrite stored fields of ``inode`` (set up states no op makes, e.g. a length);
        returns the inode as stored."""
        patched = msgspec.structs.replace(inode, **changes)
        run_transaction(self.env.engine, lambda txn: records.save_inode(txn, patched))
        return patched

    def _common(self, caller: Caller | None, request: RequestId | None) -> dict[str, Any]:
        return {"caller": caller or self.caller, "request": request or self.request_id()}

    # ------------------------------------------------------------------------------ operations

    def stat(self, path: Any, *, follow: bool = True, parent: int = ROOT_INODE, caller: Caller | None = None):
        request = wire.StatRequest(at=_at(path, parent), follow=follow, caller=caller or self.caller)
        return self.call(stat, request, read_only=True).inode

    def lookup(self, parent: int, name: str | bytes, *, caller: Caller | None = None):
        request = wire.LookupRequest(parent=parent, name=os.fsencode(name), caller=caller or self.caller)
        return self.call(lookup, request, read_only=True).inode

    def batch_stat(self, inodes=(), paths=(), *, caller: Caller | None = None):
        request = wire.BatchStatRequest(
            inodes=list(inodes), paths=[_at(p) for p in paths], caller=caller or self.caller
        )
        return self.call(batch_stat, request, read_only=True)

    def statfs(self, *, capacity_bytes: int = 100, used_bytes: int = 40, free_bytes: int = 60):
        request = wire.StatFsRequest(caller=self.caller)
        return self.call(
            statfs,
            request,
            read_only=True,
            capacity_bytes=capacity_bytes,
            used_bytes=used_bytes,
            free_bytes=free_bytes,
        )

    def mkdir(
        self,
        path: Any,
        mode: int = 0o755,
        *,
        recursive: bool = False,
        parent: int = ROOT_INODE,
        caller: Caller | None = None,
        request: RequestId | None = None,
    ):
        req = wire.MkdirRequest(
            at=_at(path, parent), mode=mode, recursive=recursive, **self._common(caller, request)
        )
        return self.call(mkdir, req).inode

    def open(
        self,
        path: Any,
        flags: int = OpenFlags.READ,
        mode: int = 0o644,
        *,
        follow: bool = True,
        parent: int = ROOT_INODE,
        caller: Caller | None = None,
        request: RequestId | None = None,
    ):
        """The whole OpenResponse."""
        req = wire.OpenRequest(
            at=_at(path, parent), flags=int(flags), mode=mode, follow=follow, **self._common(caller, request)
        )
        return self.call(open_file, req)

    def create(self, path: Any, mode: int = 0o644, *, flags: int = RW_CREATE, **kwargs: Any):
        """Create (or open) a file for read and write; returns its inode."""
        return self.open(path, flags, mode, **kwargs).inode

    def mknod(
        self,
        path: Any,
        type: wire.InodeType,
        mode: int = 0o644,
        rdev: int = 0,
        *,
        parent: int = ROOT_INODE,
        caller: Caller | None = None,
        request: RequestId | None = None,
    ):
        req = wire.MknodRequest(
            at=_at(path, parent), type=type, mode=mode, rdev=rdev, **self._common(caller, request)
        )
        return self.call(mknod, req).inode

    def symlink(
        self,
        target: str | bytes,
        path: Any,
        *,
        parent: int = ROOT_INODE,
        caller: Caller | None = None,
        request: RequestId | None = None,
    ):
        req = wire.SymlinkRequest(
            at=_at(path, parent), target=os.fsencode(target), **self._common(caller, request)
        )
        return self.call(symlink, req).inode

    def readlink(self, path: Any, *, caller: Caller | None = None) -> bytes:
        return self.call(readlink, wire.ReadlinkRequest(at=_at(path), caller=caller or self.caller)).target

    def link(self, old: Any, new: Any, *, caller: Caller | None = None, request: RequestId | None = None):
        req = wire.HardLinkRequest(old=_at(old), new=_at(new), **self._common(caller, request))
        return self.call(hard_link, req).inode

    def ls(
        self,
        path: Any = "/",
        *,
        after: bytes = b"",
        limit: int = 1000,
        with_attrs: bool = False,
        caller: Caller | None = None,
    ):
        """The whole ListResponse."""
        req = wire.ListRequest(
            at=_at(path), after=after, limit=limit, with_attrs=with_attrs, caller=caller or self.caller
        )
        return self.call(list_dir, req, read_only=True)

    def names(self, path: Any = "/", **kwargs: Any) -> list[bytes]:
        """Every name in directory ``path`` (all pages)."""
        names: list[bytes] = []
        after = b""
        while True:
            page = self.ls(path, after=after, **kwargs)
            names += [entry.name for entry in page.entries]
            if not page.more:
                return names
            after = names[-1]

    def real_path(self, path: Any, *, parent: int = ROOT_INODE, caller: Caller | None = None) -> bytes:
        req = wire.GetRealPathRequest(at=_at(path, parent), caller=caller or self.caller)
        return self.call(get_real_path, req, read_only=True).path

    def set_layout(
        self, path: Any, layout: Layout, *, caller: Caller | None = None, request: RequestId | None = None
    ):
        req = wire.SetLayoutRequest(at=_at(path), layout=layout, **self._common(caller, request))
        return self.call(set_layout, req).inode


def make_env(engine: Engine, layout: Layout | None = TEST_LAYOUT) -> MetaEnv:
    """A MetaEnv over ``engine`` (seeded allocator, ``TickClock``) with the root created."""
    env = MetaEnv(engine=engine, allocator=InodeAllocator(engine, rng=random.Random(7)), clock_ns=TickClock())
    run_transaction(engine, lambda txn: ensure_root(txn, env.clock_ns(), layout))
    return env


@contextlib.contextmanager
def expect_code(code: Code) -> Iterator[None]:
    """The block raises ``ThreeFSError`` with ``code``."""
    with pytest.raises(ThreeFSError) as info:
        yield
    assert info.value.code == code, f"expected {code.name}, got {info.value!r}"
