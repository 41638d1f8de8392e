"""The meta RPC service: one thin handler per method of ``threefs.wire.meta.META_SERVICE``.

Each handler times and counts its call and runs its operation (``meta.ops``) through
``run_op``: one transaction, retried on conflict, idempotent by the request's ``RequestId``.
The few steps that need storage run around the transaction, through the app (``meta.app``):
Open with TRUNCATE and SetAttr of a length cut the chunks first, StatFs asks storage for space,
SetLayout checks the chain table at mgmtd, and a close without a length hint has the length
computed from the chunks. Errors are ``ThreeFSError`` with META_* codes (anything else is a bug,
which the RPC layer logs and answers as INTERNAL).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from meta.components.callers import check_caller
from meta.ops.context import OpContext, execute_op, request_fingerprint, run_op
from meta.ops.fsck import fsck
from meta.ops.gc import gc_list
from meta.ops.hard_link import hard_link
from meta.ops.list import list_dir
from meta.ops.mkdir import mkdir
from meta.ops.mknod import mknod
from meta.ops.open import check_open_of, open_file
from meta.ops.readlink import readlink
from meta.ops.real_path import get_real_path
from meta.ops.remove import remove
from meta.ops.rename import rename
from meta.ops.set_layout import set_layout
from meta.ops.setattr import plan_set_attr, set_attr
from meta.ops.stat import batch_stat, lookup, stat
from meta.ops.statfs import statfs
from meta.ops.symlink import symlink
from meta.ops.sync import sync
from meta.ops.xattr import get_xattr, list_xattr, remove_xattr, set_xattr
from threefs.errors import ThreeFSError
from threefs.rpc import CallContext, Identity, RpcService, rpc_method
from threefs.rpc.server import InlineHandler
from threefs.rpc.transport import Buffer
from threefs.wire import meta as wire
from threefs.wire.common import MethodSpec

if TYPE_CHECKING:
    from meta.app import MetaApp

__all__ = ["MetaService"]

T = TypeVar("T")

_IDS_IN_HAND = 64


class MetaService(RpcService):
    """Implements every method of ``threefs.wire.meta.META_SERVICE`` for ``app``."""

    spec = wire.META_SERVICE

    def __init__(self, app: MetaApp) -> None:
        self.app = app

    def authorize_user(self, identity: Identity, spec: MethodSpec, request: Any) -> None:
        """On a user-token connection the request's caller must be one the user may act as
        (``meta.components.callers``); META_NOT_PERMITTED before anything runs otherwise."""
        check_caller(identity, spec, request.caller)

    def inline_handlers(self) -> dict[MethodSpec, InlineHandler]:
        """On an engine with ``local_reads`` (sqlite, mem) the read-only operations run in place
        on the connection: a stat is a few b-tree lookups, cheaper than a task of its own."""
        if not self.app.env.engine.local_reads:
            return {}
        reads = (
            (wire.STAT, stat),
            (wire.LOOKUP, lookup),
            (wire.BATCH_STAT, batch_stat),
            (wire.READLINK, readlink),
            (wire.LIST, list_dir),
            (wire.GET_REAL_PATH, get_real_path),
            (wire.GET_XATTR, get_xattr),
            (wire.LIST_XATTR, list_xattr),
            (wire.GC_LIST, gc_list),
        )
        return {spec: self._inline(spec, op) for spec, op in reads}

    def _inline(self, spec: MethodSpec, op: Callable[[OpContext, Any], T]) -> InlineHandler:
        env, metrics = self.app.env, self.app.metrics
        ok = metrics.requests.labels(spec.name, "ok")
        latency = metrics.request_seconds.labels(spec.name)

        def handle(ctx: CallContext, request: Any, payload: Buffer) -> T:
            started = time.perf_counter()
            try:
                response = execute_op(env, lambda c: op(c, request), caller=request.caller, read_only=True)
            except ThreeFSError as exc:
                metrics.requests.labels(spec.name, exc.code.name).inc()
                raise
            except BaseException:
                metrics.requests.labels(spec.name, "INTERNAL").inc()
                raise
            finally:
                latency.observe(time.perf_counter() - started)
            ok.inc()
            return response

        return handle

    async def _measured(self, spec: MethodSpec, call: Callable[[], Awaitable[T]]) -> T:
        metrics = self.app.metrics
        started = trio.current_time()
        result = "ok"
        try:
            return await call()
        except ThreeFSError as exc:
            result = exc.code.name
            raise
        except BaseException:
            result = "INTERNAL"
            raise
        finally:
            metrics.requests.labels(spec.name, result).inc()
            metrics.request_seconds.labels(spec.name).observe(trio.current_time() - started)

    async def _op(
        self, spec: MethodSpec, op: Callable[..., T], request: Any, *, read_only: bool = False, **extra: Any
    ) -> T:
        """Run ``op(ctx, request, **extra)`` as one idempotent transaction (a used request id
        answers only a retry of the same request: ``request_fingerprint``)."""

        def attempt(ctx: OpContext) -> T:
            return op(ctx, request, **extra)

        if not read_only:
            # ids in hand, so the op never takes a block inside its transaction (sqlite would
            # make that wait for the op's own write lock); the margin covers concurrent ops
            at = getattr(request, "at", None)
            await self.app.allocator.reserve_async(_IDS_IN_HAND + (at.path.count(b"/") if at else 0))

        request_id = getattr(request, "request", None)
        return await run_op(
            self.app.env,
            attempt,
            caller=request.caller,
            request_id=request_id,
            response_type=spec.response_type,
            read_only=read_only,
            fingerprint=request_fingerprint(spec, request) if request_id is not None else None,
        )

    def _run(
        self, spec: MethodSpec, op: Callable[..., T], request: Any, *, read_only: bool = False
    ) -> Awaitable[T]:
        return self._measured(spec, lambda: self._op(spec, op, request, read_only=read_only))

    # ------------------------------------------------------------------ reads

    @rpc_method(wire.STAT_FS)
    async def stat_fs(
        self, ctx: CallContext, request: wire.StatFsRequest, payload: Buffer
    ) -> wire.StatFsResponse:
        async def call() -> wire.StatFsResponse:
            capacity, used, free = await self.app.space()
            return await self._op(
                wire.STAT_FS,
                statfs,
                request,
                read_only=True,
                capacity_bytes=capacity,
                used_bytes=used,
                free_bytes=free,
            )

        return await self._measured(wire.STAT_FS, call)

    @rpc_method(wire.STAT)
    async def stat(self, ctx: CallContext, request: wire.StatRequest, payload: Buffer) -> wire.StatResponse:
        return await self._run(wire.STAT, stat, request, read_only=True)

    @rpc_method(wire.LOOKUP)
    async def lookup(
        self, ctx: CallContext, request: wire.LookupRequest, payload: Buffer
    ) -> wire.LookupResponse:
        return await self._run(wire.LOOKUP, lookup, request, read_only=True)

    @rpc_method(wire.BATCH_STAT)
    async def batch_stat(
        self, ctx: CallContext, request: wire.BatchStatRequest, payload: Buffer
    ) -> wire.BatchStatResponse:
        return await self._run(wire.BATCH_STAT, batch_stat, request, read_only=True)

    @rpc_method(wire.READLINK)
    async def readlink(
        self, ctx: CallContext, request: wire.ReadlinkRequest, payload: Buffer
    ) -> wire.ReadlinkResponse:
        return await self._run(wire.READLINK, readlink, request, read_only=True)

    @rpc_method(wire.LIST)
    async def list(self, ctx: CallContext, request: wire.ListRequest, payload: Buffer) -> wire.ListResponse:
        return await self._run(wire.LIST, list_dir, request, read_only=True)

    @rpc_method(wire.GET_REAL_PATH)
    async def get_real_path(
        self, ctx: CallContext, request: wire.GetRealPathRequest, payload: Buffer
    ) -> wire.GetRealPathResponse:
        return await self._run(wire.GET_REAL_PATH, get_real_path, request, read_only=True)

    @rpc_method(wire.GET_XATTR)
    async def get_xattr(
        self, ctx: CallContext, request: wire.GetXattrRequest, payload: Buffer
    ) -> wire.GetXattrResponse:
        return await self._run(wire.GET_XATTR, get_xattr, request, read_only=True)

    @rpc_method(wire.LIST_XATTR)
    async def list_xattr(
        self, ctx: CallContext, request: wire.ListXattrRequest, payload: Buffer
    ) -> wire.ListXattrResponse:
        return await self._run(wire.LIST_XATTR, list_xattr, request, read_only=True)

    @rpc_method(wire.GC_LIST)
    async def gc_list(
        self, ctx: CallContext, request: wire.GcListRequest, payload: Buffer
    ) -> wire.GcListResponse:
        return await self._run(wire.GC_LIST, gc_list, request, read_only=True)

    # ------------------------------------------------------------------ changes

    @rpc_method(wire.MKNOD)
    async def mknod(
        self, ctx: CallContext, request: wire.MknodRequest, payload: Buffer
    ) -> wire.MknodResponse:
        return await self._run(wire.MKNOD, mknod, request)

    @rpc_method(wire.OPEN)
    async def open(self, ctx: CallContext, request: wire.OpenRequest, payload: Buffer) -> wire.OpenResponse:
        async def call() -> wire.OpenResponse:
            if request.flags & wire.OpenFlags.TRUNCATE:
                inode = await self.app.writable_file(
                    request.at,
                    request.follow,
                    request.caller,
                    request.request,
                    lambda ctx, inode: check_open_of(ctx, request, inode),
                )
                if inode is not None:
                    await self.app.cut_chunks(inode, 0)
            return await self._op(wire.OPEN, open_file, request)

        return await self._measured(wire.OPEN, call)

    @rpc_method(wire.MKDIR)
    async def mkdir(
        self, ctx: CallContext, request: wire.MkdirRequest, payload: Buffer
    ) -> wire.MkdirResponse:
        return await self._run(wire.MKDIR, mkdir, request)

    @rpc_method(wire.SYMLINK)
    async def symlink(
        self, ctx: CallContext, request: wire.SymlinkRequest, payload: Buffer
    ) -> wire.SymlinkResponse:
        return await self._run(wire.SYMLINK, symlink, request)

    @rpc_method(wire.HARD_LINK)
    async def hard_link(
        self, ctx: CallContext, request: wire.HardLinkRequest, payload: Buffer
    ) -> wire.HardLinkResponse:
        return await self._run(wire.HARD_LINK, hard_link, request)

    @rpc_method(wire.REMOVE)
    async def remove(
        self, ctx: CallContext, request: wire.RemoveRequest, payload: Buffer
    ) -> wire.RemoveResponse:
        response = await self._run(wire.REMOVE, remove, request)
        if response.queued_for_gc:
            self.app.gc.wake()
        return response

    @rpc_method(wire.RENAME)
    async def rename(
        self, ctx: CallContext, request: wire.RenameRequest, payload: Buffer
    ) -> wire.RenameResponse:
        response = await self._run(wire.RENAME, rename, request)
        if response.replaced is not None:
            self.app.gc.wake()
        return response

    @rpc_method(wire.SET_ATTR)
    async def set_attr(
        self, ctx: CallContext, request: wire.SetAttrRequest, payload: Buffer
    ) -> wire.SetAttrResponse:
        async def call() -> wire.SetAttrResponse:
            if request.length is not None:
                inode = await self.app.writable_file(
                    request.at,
                    request.follow,
                    request.caller,
                    request.request,
                    lambda ctx, inode: plan_set_attr(ctx, request),
                )
                if inode is not None:
                    await self.app.cut_chunks(inode, request.length)
            return await self._op(wire.SET_ATTR, set_attr, request)

        return await self._measured(wire.SET_ATTR, call)

    @rpc_method(wire.SYNC)
    async def sync(self, ctx: CallContext, request: wire.SyncRequest, payload: Buffer) -> wire.SyncResponse:
        async def call() -> wire.SyncResponse:
            response = await self._op(wire.SYNC, sync, request)
            if request.close and request.length_hint is None:
                # the writer did not say where its writes ended: the chunks tell
                fixed = await self.app.lengths.fix(request.inode)
                if fixed is not None:
                    response = wire.SyncResponse(inode=fixed)
            return response

        return await self._measured(wire.SYNC, call)

    @rpc_method(wire.SET_XATTR)
    async def set_xattr(
        self, ctx: CallContext, request: wire.SetXattrRequest, payload: Buffer
    ) -> wire.SetXattrResponse:
        return await self._run(wire.SET_XATTR, set_xattr, request)

    @rpc_method(wire.REMOVE_XATTR)
    async def remove_xattr(
        self, ctx: CallContext, request: wire.RemoveXattrRequest, payload: Buffer
    ) -> wire.RemoveXattrResponse:
        return await self._run(wire.REMOVE_XATTR, remove_xattr, request)

    @rpc_method(wire.SET_LAYOUT)
    async def set_layout(
        self, ctx: CallContext, request: wire.SetLayoutRequest, payload: Buffer
    ) -> wire.SetLayoutResponse:
        async def call() -> wire.SetLayoutResponse:
            await self.app.check_layout(request.layout)
            return await self._op(wire.SET_LAYOUT, set_layout, request)

        return await self._measured(wire.SET_LAYOUT, call)

    @rpc_method(wire.FSCK)
    async def fsck(self, ctx: CallContext, request: wire.FsckRequest, payload: Buffer) -> wire.FsckResponse:
        response = await self._run(wire.FSCK, fsck, request)
        if request.repair:
            self.app.gc.wake()
        return response
