"""One meta server under trio: the RPC server, the metrics endpoint, registration with mgmtd,
and the GC, session-prune and length workers. ``meta.main`` runs it as a process; tests may run
several in one process over one KV engine.

Meta servers are stateless: everything lives in the KV engine, so any number of them serve a
cluster. What an operation must do on storage (remove or cut chunks before a truncate is
recorded, ask the chunks for a file's exact length, sum the targets' space) happens here,
around the operation's transaction, never inside it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from client.mgmtd import MgmtdClient
from client.routing import RoutingCache
from client.storage import StorageClient
from client.users import mgmtd_user_directory
from meta.components import permissions
from meta.components.resolve import resolve
from meta.config import MetaConfig
from meta.metrics import MetaMetrics
from meta.ops.context import MetaEnv, OpContext, file_time_ns, run_op
from meta.service import MetaService
from meta.store.alloc import InodeAllocator
from meta.store.root import ensure_root
from meta.workers import GcWorker, Heartbeater, LengthKeeper, SessionPruner
from threefs.errors import Code, ThreeFSError
from threefs.kv import keys
from threefs.kv.interface import Engine
from threefs.kv.retry import run_transaction_async
from threefs.layout import Layout
from threefs.rpc import RpcClient, RpcServer, format_address
from threefs.service.node_config import advertise_address
from threefs.wire import storage as swire
from threefs.wire.meta import Caller, Inode, InodeType, PathAt, RequestId
from threefs.wire.mgmtd import NodeStatus, NodeType

__all__ = ["MetaApp", "SpaceTotals"]

log = logging.getLogger("meta")

_SPACE_CACHE_S = 2.0
_SPACE_TIMEOUT_S = 2.0
_ROOT_WAIT_LOG_S = 5.0

SpaceTotals = tuple[int, int, int]  # capacity, used, free bytes


class MetaApp:
    """A meta server's parts, wired together. ``await nursery.start(app.run)`` returns once the
    root directory exists and the RPC server listens; registration with mgmtd (heartbeats) and
    the workers start then. Cancelling it stops everything (the engine is the caller's)."""

    def __init__(
        self,
        config: MetaConfig,
        secret: str | bytes,
        engine: Engine,
        *,
        clock_ns: Callable[[], int] = file_time_ns,
    ) -> None:
        self.config = config
        self.engine = engine
        self.rpc = RpcClient(secret, config.rpc_client)
        self.mgmtd = MgmtdClient(config.mgmtd_addresses, rpc=self.rpc, config=config.mgmtd_client)
        self.routing = RoutingCache(self.mgmtd)
        self.storage = StorageClient(self.rpc, self.routing, config.storage_client)
        self.allocator = InodeAllocator(engine)
        self.env = MetaEnv(
            engine=engine,
            allocator=self.allocator,
            gc_delay_ns=int(config.gc_delay_s * 1e9),
            clock_ns=clock_ns,
            max_retries=config.max_retries,
        )
        self.metrics = MetaMetrics()
        self.lengths = LengthKeeper(self)
        self.service = MetaService(self)
        self.users = mgmtd_user_directory(self.mgmtd)  # user tokens are checked against mgmtd's users
        self.server = RpcServer(secret, [self.service], config.rpc, users=self.users)
        self.heartbeater = Heartbeater(self)
        self.gc = GcWorker(self)
        self.sessions = SessionPruner(self)
        self.address = ""
        self.port = 0  # the bound RPC port, once listening
        self.metrics_port = 0  # the bound metrics port (0: off)
        self._space: tuple[float, SpaceTotals] | None = None

    async def run(self, *, task_status: trio.TaskStatus[MetaApp] = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        async with self.rpc, trio.open_nursery() as nursery:
            await self._make_root()
            self.port = await nursery.start(self.server.serve, config.listen_host, config.listen_port)
            self.address = advertise_address(config, self.port)
            if config.metrics_port >= 0:
                host = config.metrics_host or config.listen_host
                self.metrics_port = await nursery.start(self.metrics.serve, host, config.metrics_port)
                log.info("metrics on %s", format_address((host, self.metrics_port)))
            nursery.start_soon(self.heartbeater.run_forever)
            nursery.start_soon(self.routing.run_refresher, config.routing_refresh_s)
            nursery.start_soon(self.users.run_forever, config.routing_refresh_s)
            nursery.start_soon(self.gc.run_forever)
            nursery.start_soon(self.sessions.run_forever)
            nursery.start_soon(self.lengths.run_forever)
            log.info("meta %d of cluster %r serving at %s", config.node_id, config.cluster_id, self.address)
            task_status.started(self)

    # ------------------------------------------------------------------ start

    def default_layout(self) -> Layout:
        """The root's layout: table ``default_table_id`` at mgmtd's latest version, the
        configured chunk size, and the configured stripe capped at the table's chains."""
        table = self.routing.chain_table(self.config.default_table_id)
        return Layout(
            table_id=table.table_id,
            table_version=table.version,
            chunk_size=self.config.default_chunk_size,
            stripe_size=min(self.config.default_stripe_size, len(table.chain_ids)),
        )

    async def _make_root(self) -> None:
        """Create the root directory unless it exists; waits (logging) until mgmtd has the
        default chain table, which the root's layout names."""
        last_log = -_ROOT_WAIT_LOG_S
        while True:
            try:
                await self.routing.refresh()
                layout = self.default_layout()
                break
            except ThreeFSError as exc:
                if not exc.retryable and exc.code != Code.MGMTD_TABLE_NOT_FOUND:
                    raise
                if trio.current_time() - last_log >= _ROOT_WAIT_LOG_S:
                    log.warning("waiting for chain table %d at mgmtd: %s", self.config.default_table_id, exc)
                    last_log = trio.current_time()
                await trio.sleep(0.2)
        now_ns = self.env.clock_ns()
        config = self.config
        await run_transaction_async(
            self.engine,
            lambda txn: ensure_root(
                txn, now_ns, layout, uid=config.root_uid, gid=config.root_gid, mode=config.root_mode
            ),
        )

    # ------------------------------------------------------------------ storage around operations

    async def writable_file(
        self,
        at: PathAt,
        follow: bool,
        caller: Caller,
        request: RequestId,
        precheck: Callable[[OpContext, Inode], object] | None = None,
    ) -> Inode | None:
        """The file ``at`` names when the caller may write it, ``request`` has not run yet
        (a retry of a request that ran must not cut chunks written since) and ``precheck``
        (the operation's own checks, run on that inode) raises nothing; None otherwise, in
        which case the operation itself gives the answer (an error, or nothing to cut). So a
        request that will be refused never cuts chunks."""

        def check(ctx: OpContext) -> Inode | None:
            if ctx.txn.get(keys.idempotency_key(request.client_id, request.seq)) is not None:
                return None
            try:
                inode = resolve(ctx, at, follow=follow)
                if inode.type != InodeType.FILE or inode.layout is None:
                    return None
                if not permissions.may(inode, caller, permissions.W):
                    return None
                if precheck is not None:
                    precheck(ctx, inode)
            except ThreeFSError:
                return None
            return inode

        return await run_op(self.env, check, caller=caller, read_only=True)

    async def cut_chunks(self, inode: Inode, new_length: int) -> None:
        """Make the file's chunks hold ``new_length`` bytes before meta records that length. The
        recorded length may be stale (lazy), so chunks past ``new_length`` are removed whatever
        meta believed the length was."""
        if inode.layout is None:
            return
        old_length = max(inode.length, new_length) + 1
        await self.storage.truncate(inode.id, inode.layout, old_length, new_length)

    async def check_layout(self, layout: Layout) -> None:
        """META_BAD_LAYOUT unless mgmtd has the layout's chain table version, with at least
        ``stripe_size`` chains."""
        try:
            view = self.routing.view
            try:
                table = view.chain_table(layout.table_id, layout.table_version)
            except ThreeFSError:
                view = await self.routing.refresh_on_mismatch(view.version)
                table = view.chain_table(layout.table_id, layout.table_version)
        except ThreeFSError as exc:
            raise ThreeFSError(
                Code.META_BAD_LAYOUT, f"layout names no known chain table: {exc.message}"
            ) from exc
        if layout.base_index >= len(table.chain_ids) or layout.stripe_size > len(table.chain_ids):
            raise ThreeFSError(
                Code.META_BAD_LAYOUT,
                f"stripe {layout.stripe_size} from {layout.base_index} does not fit chain table "
                f"{table.table_id} version {table.version} ({len(table.chain_ids)} chains)",
            )

    async def space(self) -> SpaceTotals:
        """Capacity, used and free bytes over every target of every ACTIVE storage node (cached
        for a moment); best effort: a node that does not answer counts as nothing."""
        now = trio.current_time()
        if self._space is not None and now - self._space[0] < _SPACE_CACHE_S:
            return self._space[1]
        try:
            routing = self.routing.routing
        except ThreeFSError:
            return (0, 0, 0)
        nodes = [
            node
            for node in routing.nodes.values()
            if node.node_type == NodeType.STORAGE and node.status == NodeStatus.ACTIVE and node.addresses
        ]
        totals = [0, 0, 0]

        async def ask(address: str) -> None:
            try:
                response, _ = await self.rpc.call(
                    address, swire.SPACE_INFO, swire.SpaceInfoRequest(), timeout_s=_SPACE_TIMEOUT_S
                )
            except ThreeFSError as exc:
                log.debug("space info of %s: %s", address, exc)
                return
            for target in response.targets:
                totals[0] += target.capacity_bytes
                totals[1] += target.used_bytes
                totals[2] += target.free_bytes

        async with trio.open_nursery() as nursery:
            for node in nodes:
                nursery.start_soon(ask, node.addresses[0])
        result = (totals[0], totals[1], totals[2])
        self._space = (now, result)
        return result
