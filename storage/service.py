"""The storage RPC service: thin handlers that time each call, count its result and delegate to
``storage.ops``. Errors are ``ThreeFSError`` with STORAGE_* codes (anything else is a bug, which
the RPC layer logs and answers as INTERNAL)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import trio

from storage import ops
from storage.state import StorageState
from threefs.errors import Code, ThreeFSError
from threefs.rpc import CallContext, Identity, RpcService, rpc_method
from threefs.rpc.transport import Buffer, Part
from threefs.wire import storage as wire
from threefs.wire.common import MethodSpec

__all__ = ["StorageService"]

T = TypeVar("T")

# On a user-token connection (docs/security.md): chunk I/O is open to every user (permissions
# are meta's job, as in 3FS), but only as a client sends it, never as a forwarded replica hop;
# target administration needs an admin user; resync is between storage nodes only.
_USER_METHODS = frozenset(
    m.method_id
    for m in (wire.UPDATE_CHUNK, wire.BATCH_READ, wire.QUERY_LAST_CHUNK, wire.SPACE_INFO, wire.REMOVE_CHUNKS)
)
_ADMIN_METHODS = frozenset(
    m.method_id for m in (wire.CREATE_TARGET, wire.REMOVE_TARGET, wire.DUMP_CHUNK_META)
)


class StorageService(RpcService):
    """Implements every method of ``threefs.wire.storage.STORAGE_SERVICE``."""

    spec = wire.STORAGE_SERVICE

    def __init__(self, state: StorageState) -> None:
        self.state = state

    def authorize_user(self, identity: Identity, spec: MethodSpec, request: Any) -> None:
        """PERMISSION_DENIED for what a user may not call (see ``_USER_METHODS``)."""
        method_id = spec.method_id
        if method_id in _USER_METHODS:
            if getattr(request, "from_target", 0) or getattr(request, "update_version", 0):
                raise ThreeFSError(
                    Code.PERMISSION_DENIED,
                    f"user {identity.name!r} may not send {spec.name} as a forwarded replica hop",
                )
            return
        if method_id in _ADMIN_METHODS and identity.admin:
            return
        who = "admin users" if method_id in _ADMIN_METHODS else "storage nodes (the cluster secret)"
        raise ThreeFSError(
            Code.PERMISSION_DENIED, f"{spec.name} is for {who}; user {identity.name!r} is not one"
        )

    def _deadline(self, ctx: CallContext) -> float:
        """The time an update must be answered by: the caller's deadline (or ``update_timeout_s``
        without one), less a margin to send the answer."""
        now = trio.current_time()
        deadline = min(ctx.deadline, now + self.state.config.update_timeout_s)
        return deadline - min(0.05, 0.05 * (deadline - now))

    async def _measured(self, method: str, call: Awaitable[T]) -> T:
        metrics = self.state.metrics
        started = trio.current_time()
        result = "ok"
        try:
            return await call
        except ThreeFSError as exc:
            result = exc.code.name
            raise
        except BaseException:
            result = "INTERNAL"
            raise
        finally:
            metrics.requests.labels(method, result).inc()
            metrics.request_seconds.labels(method).observe(trio.current_time() - started)

    @rpc_method(wire.UPDATE_CHUNK)
    async def update_chunk(
        self, ctx: CallContext, request: wire.UpdateChunkRequest, payload: Buffer
    ) -> wire.UpdateChunkResponse:
        return await self._measured(
            "UpdateChunk", ops.update_chunk(self.state, request, payload, self._deadline(ctx))
        )

    @rpc_method(wire.BATCH_READ)
    async def batch_read(
        self, ctx: CallContext, request: wire.BatchReadRequest, payload: Buffer
    ) -> tuple[wire.BatchReadResponse, list[Part]]:
        return await self._measured("BatchRead", ops.batch_read(self.state, request))

    @rpc_method(wire.QUERY_LAST_CHUNK)
    async def query_last_chunk(
        self, ctx: CallContext, request: wire.QueryLastChunkRequest, payload: Buffer
    ) -> wire.QueryLastChunkResponse:
        return await self._measured("QueryLastChunk", ops.query_last_chunk(self.state, request))

    @rpc_method(wire.SPACE_INFO)
    async def space_info(
        self, ctx: CallContext, request: wire.SpaceInfoRequest, payload: Buffer
    ) -> wire.SpaceInfoResponse:
        return await self._measured("SpaceInfo", ops.space_info(self.state, request))

    @rpc_method(wire.CREATE_TARGET)
    async def create_target(
        self, ctx: CallContext, request: wire.CreateTargetRequest, payload: Buffer
    ) -> wire.CreateTargetResponse:
        return await self._measured("CreateTarget", ops.create_target(self.state, request))

    @rpc_method(wire.REMOVE_TARGET)
    async def remove_target(
        self, ctx: CallContext, request: wire.RemoveTargetRequest, payload: Buffer
    ) -> wire.RemoveTargetResponse:
        return await self._measured("RemoveTarget", ops.remove_target(self.state, request))

    @rpc_method(wire.DUMP_CHUNK_META)
    async def dump_chunk_meta(
        self, ctx: CallContext, request: wire.DumpChunkMetaRequest, payload: Buffer
    ) -> wire.DumpChunkMetaResponse:
        return await self._measured("DumpChunkMeta", ops.dump_chunk_meta(self.state, request))

    @rpc_method(wire.SYNC_START)
    async def sync_start(
        self, ctx: CallContext, request: wire.SyncStartRequest, payload: Buffer
    ) -> wire.SyncStartResponse:
        return await self._measured("SyncStart", ops.sync_start(self.state, request))

    @rpc_method(wire.SYNC_DONE)
    async def sync_done(
        self, ctx: CallContext, request: wire.SyncDoneRequest, payload: Buffer
    ) -> wire.SyncDoneResponse:
        return await self._measured("SyncDone", ops.sync_done(self.state, request))

    @rpc_method(wire.REMOVE_CHUNKS)
    async def remove_chunks(
        self, ctx: CallContext, request: wire.RemoveChunksRequest, payload: Buffer
    ) -> wire.RemoveChunksResponse:
        return await self._measured(
            "RemoveChunks", ops.remove_chunks(self.state, request, self._deadline(ctx))
        )
