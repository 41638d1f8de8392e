"""Chain tables: CreateChainTable (a new version of a table), GenerateChainTable (balanced chains
over the free targets, then a table of them) and ListChainTables."""

from __future__ import annotations

import logging

from mgmtd.components.chain_table_gen import generate_chains, pair_balance
from mgmtd.components.routing_edit import RoutingEdit
from mgmtd.ops.chains import create_chain_in
from mgmtd.state import MgmtdState
from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import (
    ChainTable,
    CreateChainTableRequest,
    CreateChainTableResponse,
    GenerateChainTableRequest,
    GenerateChainTableResponse,
    ListChainTablesResponse,
)

__all__ = ["create_chain_table", "generate_chain_table", "list_chain_tables"]

log = logging.getLogger("mgmtd.admin")


def list_chain_tables(state: MgmtdState) -> ListChainTablesResponse:
    """Every version of every table, ordered by table id then version."""
    routing = state.require_primary()
    tables = [table for table_id in sorted(routing.chain_tables) for table in routing.chain_tables[table_id]]
    return ListChainTablesResponse(tables=tables)


def _create(edit: RoutingEdit, request: CreateChainTableRequest) -> ChainTable:
    if not request.chain_ids:
        raise ThreeFSError(Code.INVALID_ARG, f"chain table {request.table_id}: no chains given")
    if len(set(request.chain_ids)) != len(request.chain_ids):
        raise ThreeFSError(Code.INVALID_ARG, f"chain table {request.table_id}: a chain is named twice")
    missing = [chain_id for chain_id in request.chain_ids if edit.chain(chain_id) is None]
    if missing:
        raise ThreeFSError(Code.MGMTD_CHAIN_NOT_FOUND, f"chain table {request.table_id}: no chains {missing}")
    versions = edit.table_versions(request.table_id)
    table = ChainTable(
        table_id=request.table_id,
        version=versions[-1].version + 1 if versions else 1,
        chain_ids=list(request.chain_ids),
        description=request.description,
    )
    edit.add_table(table)
    return table


async def create_chain_table(state: MgmtdState, request: CreateChainTableRequest) -> CreateChainTableResponse:
    """Add version latest + 1 (1 for a new table) of table ``table_id`` over existing chains,
    in the given order. Earlier versions stay (file layouts name a table version). Raises
    ``INVALID_ARG`` (no chain, a chain named twice) or ``MGMTD_CHAIN_NOT_FOUND``."""
    committed = await state.mutate(lambda edit: _create(edit, request))
    table = committed.result
    log.info("chain table %d version %d: %d chains", table.table_id, table.version, len(table.chain_ids))
    return CreateChainTableResponse(table_id=table.table_id, version=table.version)


def _generate(
    edit: RoutingEdit, request: GenerateChainTableRequest, now_ms: int
) -> tuple[ChainTable, GenerateChainTableResponse]:
    wanted = set(request.node_ids)
    owners = {target.node_id for target in edit.targets()}  # targets may precede registration
    unknown = sorted(node_id for node_id in wanted if edit.node(node_id) is None and node_id not in owners)
    if unknown:
        raise ThreeFSError(Code.MGMTD_NODE_NOT_FOUND, f"GenerateChainTable: no nodes {unknown}")
    free: dict[int, list[int]] = {}
    for target in edit.targets():
        if target.chain_id == 0 and not target.admin_offline and (not wanted or target.node_id in wanted):
            free.setdefault(target.node_id, []).append(target.target_id)
    if not free:
        raise ThreeFSError(
            Code.MGMTD_INVALID_TOPOLOGY, "GenerateChainTable: no target is free (all in chains)"
        )
    first = request.first_chain_id or max((c.chain_id for c in edit.chains()), default=0) + 1
    nodes = _leave_spares({node_id: sorted(free[node_id]) for node_id in sorted(free)}, request.replication)
    specs = generate_chains(nodes, request.replication, first_chain_id=first)
    for spec in specs:
        create_chain_in(edit, spec, now_ms)
    chain_ids = [spec.chain_id for spec in specs]
    table = _create(
        edit,
        CreateChainTableRequest(
            table_id=request.table_id, chain_ids=chain_ids, description=request.description
        ),
    )
    target_node = {target_id: node_id for node_id, targets in nodes.items() for target_id in targets}
    low, high, _ = pair_balance(specs, target_node)
    response = GenerateChainTableResponse(
        table_id=table.table_id,
        version=table.version,
        chain_ids=chain_ids,
        min_pair_chains=low,
        max_pair_chains=high,
    )
    return table, response


def _leave_spares(nodes: dict[int, list[int]], replication: int) -> dict[int, list[int]]:
    """``nodes`` less ``total % replication`` targets, which stay free as spares (e.g. 5 nodes of
    2 targets make 3 chains of 3 and one spare): each taken, highest target id first, from the
    node with the most targets left (ties: the highest node id), so chains stay spread."""
    spares = sum(map(len, nodes.values())) % replication
    nodes = {node_id: list(targets) for node_id, targets in nodes.items()}
    for _ in range(spares):
        fullest = max(nodes, key=lambda node_id: (len(nodes[node_id]), node_id))
        nodes[fullest].pop()
    return {node_id: targets for node_id, targets in nodes.items() if targets}


async def generate_chain_table(
    state: MgmtdState, request: GenerateChainTableRequest
) -> GenerateChainTableResponse:
    """Make balanced chains (``generate_chains``) over the free targets and a new version of
    ``table_id`` over them, all in one routing change. When the free targets are not a multiple
    of ``replication`` the remainder stay free, as spares (``_leave_spares``). Raises
    ``MGMTD_INVALID_TOPOLOGY`` when no target is free or the targets cannot form chains of
    ``replication`` on distinct nodes,
    ``MGMTD_NODE_NOT_FOUND`` for an unknown node, ``ALREADY_EXISTS`` when a chain id is taken."""
    now_ms = state.now_ms()
    committed = await state.mutate(lambda edit: _generate(edit, request, now_ms))
    table, response = committed.result
    log.info(
        "generated chain table %d version %d: %d chains of %d, node pairs share %d..%d chains",
        table.table_id,
        table.version,
        len(response.chain_ids),
        request.replication,
        response.min_pair_chains,
        response.max_pair_chains,
    )
    return response
