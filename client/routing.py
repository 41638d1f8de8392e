"""The routing cache: the latest ``RoutingInfo`` from mgmtd, refreshed periodically and on demand,
and the lookups that route a request (chain of a table slot, chain head, node addresses).

How a caller handles a version mismatch (MGMTD_STALE_ROUTING, STORAGE_STALE_CHAIN_VERSION)::

    seen = cache.version
    head = cache.head(chain_id)
    try:
        await write(cache.target_address(head.target_id), cache.chain(chain_id).chain_version, ...)
    except ThreeFSError as exc:
        if exc.code not in ROUTING_MISMATCH_CODES:
            raise
        await cache.refresh_on_mismatch(seen)  # one refresh for all the callers that saw `seen`
        ...  # retry with the new routing (bounded, like any retry)

A caller that was told a routing version to reach (a heartbeat reply's ``routing_version``)
uses ``await cache.ensure_version(version)`` instead.
"""

from __future__ import annotations

import logging

import trio

from client.mgmtd import MgmtdClient
from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import ChainInfo, ChainTable, NodeInfo, PublicTargetState, RoutingInfo, TargetInfo

__all__ = ["ROUTING_MISMATCH_CODES", "RoutingCache", "RoutingView"]

log = logging.getLogger("client.routing")

# Errors that mean "your routing info is older than the server's": refresh, then retry.
ROUTING_MISMATCH_CODES = frozenset({Code.MGMTD_STALE_ROUTING, Code.STORAGE_STALE_CHAIN_VERSION})


class RoutingView:
    """Lookups over one ``RoutingInfo`` snapshot (never changes). Unknown ids raise
    ``ThreeFSError`` with MGMTD_TABLE_NOT_FOUND / MGMTD_CHAIN_NOT_FOUND / MGMTD_TARGET_NOT_FOUND /
    MGMTD_NODE_NOT_FOUND, naming the id and the routing version."""

    __slots__ = ("routing",)

    def __init__(self, routing: RoutingInfo) -> None:
        self.routing = routing

    @property
    def version(self) -> int:
        return self.routing.version

    def chain_table(self, table_id: int, table_version: int = 0) -> ChainTable:
        """Version ``table_version`` of table ``table_id`` (0: its latest version)."""
        versions = self.routing.chain_tables.get(table_id)
        if versions:
            if table_version == 0:
                return max(versions, key=lambda table: table.version)
            for table in versions:
                if table.version == table_version:
                    return table
        which = f"chain table {table_id}" + (f" version {table_version}" if table_version else "")
        raise ThreeFSError(Code.MGMTD_TABLE_NOT_FOUND, f"no {which} in routing version {self.version}")

    def chain_id_at(self, table_id: int, table_version: int, index: int) -> int:
        """The id of the chain at ``index`` (0-based, exact: no wrap-around) of a table version.

        Raises INVALID_ARG when ``index`` lies outside the table.
        """
        table = self.chain_table(table_id, table_version)
        if not 0 <= index < len(table.chain_ids):
            raise ThreeFSError(
                Code.INVALID_ARG,
                f"index {index} outside chain table {table_id} version {table.version} "
                f"({len(table.chain_ids)} chains)",
            )
        return table.chain_ids[index]

    def chain(self, chain_id: int) -> ChainInfo:
        chain = self.routing.chains.get(chain_id)
        if chain is None:
            raise ThreeFSError(
                Code.MGMTD_CHAIN_NOT_FOUND, f"no chain {chain_id} in routing version {self.version}"
            )
        return chain

    def target(self, target_id: int) -> TargetInfo:
        target = self.routing.targets.get(target_id)
        if target is None:
            raise ThreeFSError(
                Code.MGMTD_TARGET_NOT_FOUND, f"no target {target_id} in routing version {self.version}"
            )
        return target

    def node(self, node_id: int) -> NodeInfo:
        node = self.routing.nodes.get(node_id)
        if node is None:
            raise ThreeFSError(
                Code.MGMTD_NODE_NOT_FOUND, f"no node {node_id} in routing version {self.version}"
            )
        return node

    def serving_replicas(self, chain_id: int) -> list[TargetInfo]:
        """The chain's SERVING targets in chain order (head first); may be empty."""
        chain = self.chain(chain_id)
        return [
            self.target(replica.target_id)
            for replica in chain.targets
            if replica.public_state == PublicTargetState.SERVING
        ]

    def head(self, chain_id: int) -> TargetInfo:
        """The chain's first SERVING target; CLIENT_NO_SERVING_REPLICA (retryable) when none."""
        chain = self.chain(chain_id)
        for replica in chain.targets:
            if replica.public_state == PublicTargetState.SERVING:
                return self.target(replica.target_id)
        states = ", ".join(f"{r.target_id}:{r.public_state.name}" for r in chain.targets) or "no targets"
        raise ThreeFSError(
            Code.CLIENT_NO_SERVING_REPLICA,
            f"chain {chain_id} version {chain.chain_version} has no SERVING target ({states})",
        )

    def node_address(self, node_id: int) -> str:
        """The node's first registered address; CLIENT_ROUTING_UNAVAILABLE when it has none."""
        node = self.node(node_id)
        if not node.addresses:
            raise ThreeFSError(
                Code.CLIENT_ROUTING_UNAVAILABLE,
                f"node {node_id} has registered no address (routing version {self.version})",
            )
        return node.addresses[0]

    def target_address(self, target_id: int) -> str:
        """The address of the node that holds the target."""
        return self.node_address(self.target(target_id).node_id)


class RoutingCache:
    """The latest routing info fetched through ``mgmtd`` (borrowed: the caller keeps it open).

    Lookups (``chain``, ``head``, ...) read the snapshot current at the call; a caller that needs
    several lookups from one version takes ``view = cache.view`` once. Before the first refresh
    every lookup raises CLIENT_ROUTING_UNAVAILABLE. Refreshes never move to an older version of
    the same cluster. Concurrent refreshes share one request.
    """

    def __init__(self, mgmtd: MgmtdClient, routing: RoutingInfo | None = None) -> None:
        self.mgmtd = mgmtd
        self._view: RoutingView | None = RoutingView(routing) if routing is not None else None
        self._refresh_lock = trio.Lock()

    @property
    def view(self) -> RoutingView:
        if self._view is None:
            raise ThreeFSError(Code.CLIENT_ROUTING_UNAVAILABLE, "no routing info yet (refresh() not done)")
        return self._view

    @property
    def routing(self) -> RoutingInfo:
        return self.view.routing

    @property
    def version(self) -> int:
        """The cached routing version; 0 before the first refresh."""
        return 0 if self._view is None else self._view.version

    def install(self, routing: RoutingInfo) -> bool:
        """Keep ``routing`` if it is newer than the cached one (or from another cluster id)."""
        current = self._view
        if current is not None and routing.cluster_id == current.routing.cluster_id:
            if routing.version <= current.version:
                if routing.version < current.version:
                    log.warning("ignored routing version %d older than %d", routing.version, current.version)
                return False
        self._view = RoutingView(routing)
        return True

    async def refresh(self, *, timeout_s: float | None = None) -> RoutingInfo | None:
        """Ask mgmtd for routing newer than the cached version. Returns the new routing info, or
        None when the cached one is current. Raises the ``MgmtdClient`` errors."""
        async with self._refresh_lock:
            return await self._refresh_locked(timeout_s)

    async def _refresh_locked(self, timeout_s: float | None) -> RoutingInfo | None:
        routing = await self.mgmtd.get_routing_info(self.version, timeout_s=timeout_s)
        if routing is not None and self.install(routing):
            log.debug("routing version %d", routing.version)
            return routing
        return None

    async def refresh_on_mismatch(self, seen_version: int, *, timeout_s: float | None = None) -> RoutingView:
        """For a caller whose request failed with a ``ROUTING_MISMATCH_CODES`` error while it
        used routing version ``seen_version``: refresh unless a refresh that finished after that
        already moved the cache past it, and return the current view. Many callers hitting the
        same mismatch cause one request."""
        async with self._refresh_lock:
            if self.version <= seen_version:
                await self._refresh_locked(timeout_s)
        return self.view

    async def ensure_version(self, at_least: int, *, timeout_s: float | None = None) -> RoutingView:
        """Refresh until the cached version is ``at_least`` or newer; returns the view.

        Raises CLIENT_ROUTING_UNAVAILABLE when mgmtd has not reached that version within
        ``timeout_s`` (default: the mgmtd client's request timeout), or the refresh's own error.
        """
        timeout = timeout_s or self.mgmtd.config.request_timeout_s
        deadline = trio.current_time() + timeout
        backoff = self.mgmtd.config.retry_initial_backoff_s
        while self.version < at_least:
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                raise ThreeFSError(
                    Code.CLIENT_ROUTING_UNAVAILABLE,
                    f"routing version {at_least} not reached within {timeout}s (have {self.version})",
                )
            async with self._refresh_lock:
                if self.version < at_least:
                    await self._refresh_locked(remaining)
            if self.version < at_least:
                await trio.sleep(min(backoff, max(deadline - trio.current_time(), 0)))
                backoff = min(2 * backoff, self.mgmtd.config.retry_max_backoff_s)
        return self.view

    async def run_refresher(
        self, interval_s: float, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Refresh every ``interval_s`` until cancelled. ``await nursery.start(cache.run_refresher,
        5.0)`` returns once the first routing info is cached, or raises the first refresh's error.
        Later failures are logged and the loop goes on with the cached routing."""
        if interval_s <= 0:
            raise ThreeFSError(Code.INVALID_ARG, f"refresh interval must be > 0, not {interval_s}")
        if self._view is None:
            await self.refresh()
        task_status.started()
        while True:
            await trio.sleep(interval_s)
            try:
                await self.refresh()
            except ThreeFSError as exc:
                log.warning("routing refresh failed (keeping version %d): %s", self.version, exc)

    # ------------------------------------------------------------------ lookups on the current view

    def chain_table(self, table_id: int, table_version: int = 0) -> ChainTable:
        return self.view.chain_table(table_id, table_version)

    def chain_id_at(self, table_id: int, table_version: int, index: int) -> int:
        return self.view.chain_id_at(table_id, table_version, index)

    def chain(self, chain_id: int) -> ChainInfo:
        return self.view.chain(chain_id)

    def target(self, target_id: int) -> TargetInfo:
        return self.view.target(target_id)

    def node(self, node_id: int) -> NodeInfo:
        return self.view.node(node_id)

    def serving_replicas(self, chain_id: int) -> list[TargetInfo]:
        return self.view.serving_replicas(chain_id)

    def head(self, chain_id: int) -> TargetInfo:
        return self.view.head(chain_id)

    def node_address(self, node_id: int) -> str:
        return self.view.node_address(node_id)

    def target_address(self, target_id: int) -> str:
        return self.view.target_address(target_id)
