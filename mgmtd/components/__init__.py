"""Pure components of mgmtd (no I/O, no trio): the chain updater's transition rule and the
chain-table generator."""

from mgmtd.components.chain_rules import (
    apply_update,
    chain_changed,
    order_chain,
    rotate_last_serving,
    update_chain_targets,
)
from mgmtd.components.chain_table_gen import generate_chains, head_counts, pair_balance

__all__ = [
    "apply_update",
    "chain_changed",
    "generate_chains",
    "head_counts",
    "order_chain",
    "pair_balance",
    "rotate_last_serving",
    "update_chain_targets",
]
