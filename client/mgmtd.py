"""The mgmtd client: finds the primary mgmtd from any known address, follows NOT_PRIMARY
redirects and fails over, and wraps every mgmtd method in a typed call.

Retries: a call is retried, within its overall deadline, only on retryable errors. Requests that
are not idempotent (heartbeats, creations, removals, chain updates) are retried only when the
error proves the request never ran (NOT_PRIMARY, connect failures, ...), never after a
connection loss or deadline that leaves the outcome unknown: those errors reach the caller.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import msgspec
import trio

from client.config import MgmtdClientConfig
from threefs.errors import Code, ThreeFSError
from threefs.rpc import RpcClient, format_address, parse_address
from threefs.rpc.users import UserToken
from threefs.wire import mgmtd as wire
from threefs.wire.common import MethodSpec

__all__ = ["MgmtdClient"]

log = logging.getLogger("client.mgmtd")

# Requests that give the same result when run twice: retried after any retryable error.
_IDEMPOTENT_METHODS = frozenset(
    spec.method_id
    for spec in (
        wire.GET_PRIMARY,
        wire.GET_ROUTING_INFO,
        wire.LIST_NODES,
        wire.LIST_TARGETS,
        wire.LIST_CHAINS,
        wire.LIST_CHAIN_TABLES,
        wire.LIST_CLIENT_SESSIONS,
        wire.SET_NODE_ENABLED,
        wire.OFFLINE_TARGET,
        wire.SET_PREFERRED_ORDER,
        wire.USER_LIST,
        wire.USER_KEYS,
        wire.USER_WHO_AM_I,
    )
)
# Retryable errors after which the server may or may not have run the request.
_OUTCOME_UNKNOWN = frozenset(
    {Code.RPC_CONNECTION_CLOSED, Code.RPC_DEADLINE_EXCEEDED, Code.KV_COMMIT_UNKNOWN, Code.TIMEOUT}
)
# Errors that say the address we called is no longer (or not) a usable primary.
_LOST_PRIMARY = frozenset(
    {Code.MGMTD_NOT_PRIMARY, Code.RPC_CONNECT_FAILED, Code.RPC_CONNECTION_CLOSED, Code.RPC_DEADLINE_EXCEEDED}
)
_UNREACHABLE = frozenset({Code.RPC_CONNECT_FAILED, Code.RPC_CONNECTION_CLOSED, Code.RPC_DEADLINE_EXCEEDED})


def _normalize(address: str) -> str:
    """``address`` as ``format_address`` writes it; raises ``ThreeFSError(INVALID_ARG)`` if bad."""
    return format_address(parse_address(address))


class MgmtdClient:
    """Calls the primary mgmtd of the cluster reached through ``addresses`` ("host:port", any
    mgmtd of the cluster; at least one).

    Ownership: with ``rpc`` given, the caller owns that ``RpcClient`` and keeps it open while this
    client is used (entering/leaving ``async with MgmtdClient(...)`` is then optional and closes
    nothing). Without it, ``secret`` is required and this client creates its own ``RpcClient``,
    which exists only inside ``async with MgmtdClient(...)``.

    Every method raises ``ThreeFSError``: the server's code; CLIENT_ROUTING_UNAVAILABLE when no
    primary could be found before the deadline (the message lists each address and what it
    answered); or the last retryable error when retries ran out of time. The client may be used
    by many tasks at once; primary discovery runs once for all of them.
    """

    def __init__(
        self,
        addresses: Sequence[str],
        secret: str | bytes | UserToken | None = None,
        rpc: RpcClient | None = None,
        *,
        config: MgmtdClientConfig | None = None,
    ) -> None:
        if isinstance(addresses, str) or not addresses:
            raise ThreeFSError(Code.INVALID_ARG, "MgmtdClient needs a list of at least one mgmtd address")
        self.addresses: tuple[str, ...] = tuple(dict.fromkeys(_normalize(a) for a in addresses))
        self.config = config or MgmtdClientConfig()
        if rpc is None and secret is None:
            raise ThreeFSError(Code.INVALID_ARG, "MgmtdClient needs the cluster secret or an RpcClient")
        self._owns_rpc = rpc is None
        self._rpc = rpc if rpc is not None else RpcClient(secret)  # type: ignore[arg-type]
        self._primary: str | None = None
        self._discovery_lock = trio.Lock()

    async def __aenter__(self) -> MgmtdClient:
        if self._owns_rpc:
            await self._rpc.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        if not self._owns_rpc:
            return None
        return await self._rpc.__aexit__(exc_type, exc, tb)

    @property
    def rpc(self) -> RpcClient:
        """The ``RpcClient`` calls go through (owned or borrowed, see the class docstring)."""
        return self._rpc

    @property
    def known_primary(self) -> str | None:
        """The primary's address as last confirmed or named by a redirect; None when unknown."""
        return self._primary

    # ------------------------------------------------------------------ discovery and the call loop

    async def primary(self, *, timeout_s: float | None = None) -> str:
        """The primary's address, asking the mgmtds when none is known (see ``call`` for errors)."""
        deadline = trio.current_time() + (timeout_s or self.config.request_timeout_s)
        return self._primary or await self._discover(deadline)

    async def get_primary(self, address: str, *, timeout_s: float | None = None) -> wire.GetPrimaryResponse:
        """Ask the mgmtd at ``address`` (primary or not) what it knows of the primary; one attempt."""
        response, _ = await self._rpc.call(
            _normalize(address),
            wire.GET_PRIMARY,
            wire.GetPrimaryRequest(),
            timeout_s=timeout_s or self.config.attempt_timeout_s,
        )
        return response

    async def _discover(self, deadline: float) -> str:
        """The primary's address, found by ``_search`` unless another task finds it first; only
        one search runs at a time, and waiting for it counts against ``deadline``."""
        with trio.move_on_at(deadline) as waited:
            await self._discovery_lock.acquire()
        if waited.cancelled_caught:
            raise ThreeFSError(
                Code.CLIENT_ROUTING_UNAVAILABLE,
                "no primary mgmtd found before the deadline (search in progress)",
            )
        try:
            if self._primary is not None:  # found by another task while we waited
                return self._primary
            return await self._search(deadline)
        finally:
            self._discovery_lock.release()

    async def _search(self, deadline: float) -> str:
        """Ask every address in rounds (following the primary each names first), with backoff
        between rounds, until one says it is primary or ``deadline`` passes."""
        outcomes: dict[str, str] = {}  # address -> what it last answered, for the error message
        backoff = self.config.retry_initial_backoff_s
        rounds = 0
        while True:
            rounds += 1
            errors = await self._search_round(deadline, outcomes)
            if self._primary is not None:
                return self._primary
            if errors is not None and not any(e.retryable for e in errors):
                if len(errors) == 1:
                    raise errors[0]
                first = errors[0]
                raise ThreeFSError(first.code, f"{first.message} (every mgmtd refused: {_list(outcomes)})")
            if deadline - trio.current_time() <= backoff:
                raise ThreeFSError(
                    Code.CLIENT_ROUTING_UNAVAILABLE,
                    f"no primary mgmtd found in {rounds} round(s) before the deadline; "
                    f"tried {_list(outcomes) or ', '.join(self.addresses)}",
                )
            await trio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(2 * backoff, self.config.retry_max_backoff_s)

    async def _search_round(self, deadline: float, outcomes: dict[str, str]) -> list[ThreeFSError] | None:
        """One round of ``_search``: sets ``_primary`` when found. Returns the errors when every
        address asked failed with one (None otherwise)."""
        errors: list[ThreeFSError] = []
        pending = list(self.addresses)
        asked: set[str] = set()
        while pending and (remaining := deadline - trio.current_time()) > 0:
            address = pending.pop(0)
            asked.add(address)
            try:
                response = await self.get_primary(
                    address, timeout_s=min(self.config.attempt_timeout_s, remaining)
                )
            except ThreeFSError as exc:
                outcomes[address] = f"{exc.code.name}: {exc.message}"
                errors.append(exc)
                continue
            if response.is_primary:
                self._primary = address
                log.info("mgmtd primary is %s", address)
                return None
            outcomes[address] = f"not primary; primary {response.primary_address or 'unknown'}"
            hint = _hint_address(response.primary_address)
            if hint and hint not in asked:  # ask the named primary next
                if hint in pending:
                    pending.remove(hint)
                pending.insert(0, hint)
        return errors if errors and len(errors) == len(asked) and not pending else None

    def _forget(self, address: str) -> None:
        if self._primary == address:
            self._primary = None

    async def call(self, spec: MethodSpec, request: msgspec.Struct, *, timeout_s: float | None = None) -> Any:
        """Call ``spec`` on the primary and return its response, retrying as the module docstring
        says until ``timeout_s`` (default ``config.request_timeout_s``) has passed."""
        deadline = trio.current_time() + (timeout_s or self.config.request_timeout_s)
        idempotent = spec.method_id in _IDEMPOTENT_METHODS
        backoff = self.config.retry_initial_backoff_s
        redirects: set[str] = set()
        attempt = 0
        while True:
            attempt += 1
            address = self._primary or await self._discover(deadline)
            remaining = deadline - trio.current_time()
            if remaining <= 0:  # outside the try: our own deadline says nothing about the primary
                raise ThreeFSError(
                    Code.RPC_DEADLINE_EXCEEDED, f"{spec.name}: deadline passed before calling {address}"
                )
            try:
                response, _ = await self._rpc.call(
                    address, spec, request, timeout_s=min(self.config.attempt_timeout_s, remaining)
                )
                return response
            except ThreeFSError as exc:
                redirected = False
                if exc.code in _LOST_PRIMARY:
                    self._forget(address)
                if exc.code == Code.MGMTD_NOT_PRIMARY:
                    hint = _hint_address(wire.parse_not_primary(exc.message))
                    if hint and hint != address and hint not in redirects:
                        redirects.add(hint)
                        self._primary = hint
                        redirected = True
                if not exc.retryable or (not idempotent and exc.code in _OUTCOME_UNKNOWN):
                    raise
                pause = 0.0 if redirected else backoff * random.uniform(0.5, 1.0)
                if trio.current_time() + pause >= deadline:
                    if exc.code in _UNREACHABLE:
                        raise ThreeFSError(
                            Code.CLIENT_ROUTING_UNAVAILABLE,
                            f"{spec.name}: mgmtd primary {address} unreachable before the deadline: {exc}",
                        ) from exc
                    raise
                log.debug(
                    "%s at %s failed (%s); retrying",
                    spec.name,
                    address,
                    exc,
                    extra={"attempt": attempt, "code": exc.code.name},
                )
                if not redirected:
                    await trio.sleep(pause)
                    backoff = min(2 * backoff, self.config.retry_max_backoff_s)

    # ------------------------------------------------------------------ typed methods

    async def heartbeat(
        self, request: wire.HeartbeatRequest, *, timeout_s: float | None = None
    ) -> wire.HeartbeatResponse:
        """Send one heartbeat (not retried once it may have arrived: its ``seq`` is spent)."""
        return await self.call(wire.HEARTBEAT, request, timeout_s=timeout_s)

    async def get_routing_info(
        self, known_version: int = 0, *, timeout_s: float | None = None
    ) -> wire.RoutingInfo | None:
        """The routing info, or None when ``known_version`` is already the current version."""
        request = wire.GetRoutingInfoRequest(known_version=known_version)
        response = await self.call(wire.GET_ROUTING_INFO, request, timeout_s=timeout_s)
        return response.routing

    async def create_targets(
        self, targets: Sequence[wire.TargetInfo], *, timeout_s: float | None = None
    ) -> int:
        """Declare targets; returns the new routing version."""
        request = wire.CreateTargetsRequest(targets=list(targets))
        return (await self.call(wire.CREATE_TARGETS, request, timeout_s=timeout_s)).routing_version

    async def create_chains(self, chains: Sequence[wire.ChainSpec], *, timeout_s: float | None = None) -> int:
        """Create chains; returns the new routing version."""
        request = wire.CreateChainsRequest(chains=list(chains))
        return (await self.call(wire.CREATE_CHAINS, request, timeout_s=timeout_s)).routing_version

    async def create_chain_table(
        self,
        table_id: int,
        chain_ids: Sequence[int],
        description: str = "",
        *,
        timeout_s: float | None = None,
    ) -> wire.CreateChainTableResponse:
        """Add a version of table ``table_id``; the response names the version created."""
        request = wire.CreateChainTableRequest(
            table_id=table_id, chain_ids=list(chain_ids), description=description
        )
        return await self.call(wire.CREATE_CHAIN_TABLE, request, timeout_s=timeout_s)

    async def generate_chain_table(
        self,
        table_id: int,
        replication: int,
        *,
        node_ids: Sequence[int] = (),
        first_chain_id: int = 0,
        description: str = "",
        timeout_s: float | None = None,
    ) -> wire.GenerateChainTableResponse:
        """Balanced chains over the free targets and a new version of ``table_id`` over them."""
        request = wire.GenerateChainTableRequest(
            table_id=table_id,
            replication=replication,
            node_ids=list(node_ids),
            first_chain_id=first_chain_id,
            description=description,
        )
        return await self.call(wire.GENERATE_CHAIN_TABLE, request, timeout_s=timeout_s)

    async def list_nodes(self, *, timeout_s: float | None = None) -> list[wire.NodeInfo]:
        return (await self.call(wire.LIST_NODES, wire.ListNodesRequest(), timeout_s=timeout_s)).nodes

    async def list_targets(self, *, timeout_s: float | None = None) -> list[wire.TargetInfo]:
        return (await self.call(wire.LIST_TARGETS, wire.ListTargetsRequest(), timeout_s=timeout_s)).targets

    async def list_chains(self, *, timeout_s: float | None = None) -> list[wire.ChainInfo]:
        return (await self.call(wire.LIST_CHAINS, wire.ListChainsRequest(), timeout_s=timeout_s)).chains

    async def list_chain_tables(self, *, timeout_s: float | None = None) -> list[wire.ChainTable]:
        request = wire.ListChainTablesRequest()
        return (await self.call(wire.LIST_CHAIN_TABLES, request, timeout_s=timeout_s)).tables

    async def list_client_sessions(self, *, timeout_s: float | None = None) -> list[wire.ClientSession]:
        request = wire.ListClientSessionsRequest()
        return (await self.call(wire.LIST_CLIENT_SESSIONS, request, timeout_s=timeout_s)).sessions

    async def set_node_enabled(
        self, node_id: int, enabled: bool, *, timeout_s: float | None = None
    ) -> wire.NodeInfo:
        """Enable or disable a node; returns the node as updated."""
        request = wire.SetNodeEnabledRequest(node_id=node_id, enabled=enabled)
        return (await self.call(wire.SET_NODE_ENABLED, request, timeout_s=timeout_s)).node

    async def offline_target(self, target_id: int, *, timeout_s: float | None = None) -> wire.TargetInfo:
        """Take a target out of service; returns the target as updated."""
        request = wire.OfflineTargetRequest(target_id=target_id)
        return (await self.call(wire.OFFLINE_TARGET, request, timeout_s=timeout_s)).target

    async def remove_target(self, target_id: int, *, timeout_s: float | None = None) -> int:
        """Forget a target; returns the new routing version."""
        request = wire.RemoveTargetRequest(target_id=target_id)
        return (await self.call(wire.REMOVE_TARGET, request, timeout_s=timeout_s)).routing_version

    async def update_chain(
        self, chain_id: int, target_id: int, *, add: bool, timeout_s: float | None = None
    ) -> wire.ChainInfo:
        """Add ``target_id`` to the chain (``add=True``) or remove it; returns the chain."""
        request = wire.UpdateChainRequest(chain_id=chain_id, target_id=target_id, add=add)
        return (await self.call(wire.UPDATE_CHAIN, request, timeout_s=timeout_s)).chain

    async def rotate_last_serving(self, chain_id: int, *, timeout_s: float | None = None) -> wire.ChainInfo:
        """Make the next target of the chain its LASTSRV; returns the chain."""
        request = wire.RotateLastServingRequest(chain_id=chain_id)
        return (await self.call(wire.ROTATE_LAST_SERVING, request, timeout_s=timeout_s)).chain

    async def set_preferred_order(
        self, chain_id: int, target_ids: Sequence[int], *, timeout_s: float | None = None
    ) -> wire.ChainInfo:
        """Set the order of the chain's SERVING targets; returns the chain."""
        request = wire.SetPreferredOrderRequest(chain_id=chain_id, target_ids=list(target_ids))
        return (await self.call(wire.SET_PREFERRED_ORDER, request, timeout_s=timeout_s)).chain


def _hint_address(address: str) -> str:
    """A primary's address as a mgmtd named it, normalized ("" when none or unparsable)."""
    try:
        return _normalize(address) if address else ""
    except ThreeFSError:
        return ""


def _list(outcomes: dict[str, str]) -> str:
    return "; ".join(f"{address} ({outcome})" for address, outcome in outcomes.items())
