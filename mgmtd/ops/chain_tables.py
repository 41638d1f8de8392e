"""Chain tables: CreateChainTable (a new version of a table) and ListChainTables."""

from __future__ import annotations

import logging

from mgmtd.components.routing_edit import RoutingEdit
from mgmtd.state import MgmtdState
from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import (
    ChainTable,
    CreateChainTableRequest,
    CreateChainTableResponse,
    ListChainTablesResponse,
)

__all__ = ["create_chain_table", "list_chain_tables"]

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
