"""A copy-on-write change to routing info: operations read through it and put new structs.

Structs held by a ``RoutingInfo`` are never changed in place (a reply may still be encoding
them, and a failed commit must leave memory as it was): an operation puts a replaced copy
(``msgspec.structs.replace``). Once the change is committed to the KV engine, ``build`` makes
the next ``RoutingInfo`` sharing every untouched struct with the old one.
"""

from __future__ import annotations

from collections.abc import Iterator

from mgmtd.store.routing_store import RoutingChanges
from threefs.wire.mgmtd import ChainInfo, ChainTable, NodeInfo, RoutingInfo, TargetInfo

__all__ = ["RoutingEdit"]


class RoutingEdit:
    """Pending changes on top of ``base``. Reads (``node``, ``target``, ...) see the changes."""

    def __init__(self, base: RoutingInfo) -> None:
        self.base = base
        self._nodes: dict[int, NodeInfo] = {}
        self._targets: dict[int, TargetInfo] = {}
        self._removed_targets: set[int] = set()
        self._chains: dict[int, ChainInfo] = {}
        self._tables: list[ChainTable] = []

    # ---- reads ------------------------------------------------------------------------------

    def node(self, node_id: int) -> NodeInfo | None:
        return self._nodes.get(node_id) or self.base.nodes.get(node_id)

    def target(self, target_id: int) -> TargetInfo | None:
        if target_id in self._removed_targets:
            return None
        return self._targets.get(target_id) or self.base.targets.get(target_id)

    def chain(self, chain_id: int) -> ChainInfo | None:
        return self._chains.get(chain_id) or self.base.chains.get(chain_id)

    def nodes(self) -> Iterator[NodeInfo]:
        """Every node, in id order."""
        for node_id in sorted(self.base.nodes.keys() | self._nodes.keys()):
            node = self.node(node_id)
            if node is not None:
                yield node

    def targets(self) -> Iterator[TargetInfo]:
        """Every target, in id order."""
        for target_id in sorted(self.base.targets.keys() | self._targets.keys()):
            target = self.target(target_id)
            if target is not None:
                yield target

    def chains(self) -> Iterator[ChainInfo]:
        """Every chain, in id order."""
        for chain_id in sorted(self.base.chains.keys() | self._chains.keys()):
            chain = self.chain(chain_id)
            if chain is not None:
                yield chain

    def table_versions(self, table_id: int) -> list[ChainTable]:
        """Every version of table ``table_id``, oldest first."""
        pending = [table for table in self._tables if table.table_id == table_id]
        return list(self.base.chain_tables.get(table_id, ())) + pending

    # ---- writes -----------------------------------------------------------------------------

    def put_node(self, node: NodeInfo) -> None:
        if self.base.nodes.get(node.node_id) == node:
            self._nodes.pop(node.node_id, None)
        else:
            self._nodes[node.node_id] = node

    def put_target(self, target: TargetInfo) -> None:
        self._removed_targets.discard(target.target_id)
        if self.base.targets.get(target.target_id) == target:
            self._targets.pop(target.target_id, None)
        else:
            self._targets[target.target_id] = target

    def remove_target(self, target_id: int) -> None:
        self._targets.pop(target_id, None)
        if target_id in self.base.targets:
            self._removed_targets.add(target_id)

    def put_chain(self, chain: ChainInfo) -> None:
        if self.base.chains.get(chain.chain_id) == chain:
            self._chains.pop(chain.chain_id, None)
        else:
            self._chains[chain.chain_id] = chain

    def add_table(self, table: ChainTable) -> None:
        """A new version of a chain table (versions are never changed once written)."""
        self._tables.append(table)

    # ---- commit -----------------------------------------------------------------------------

    @property
    def changed(self) -> bool:
        return bool(self._nodes or self._targets or self._removed_targets or self._chains or self._tables)

    def changes(self) -> RoutingChanges:
        """What to write to the KV engine."""
        return RoutingChanges(
            base_version=self.base.version,
            nodes=list(self._nodes.values()),
            targets=list(self._targets.values()),
            removed_targets=sorted(self._removed_targets),
            chains=list(self._chains.values()),
            tables=list(self._tables),
        )

    def build(self, version: int) -> RoutingInfo:
        """The routing info after the change, at ``version``; ``base`` is left as it was."""
        base = self.base
        targets = {**base.targets, **self._targets}
        for target_id in self._removed_targets:
            targets.pop(target_id, None)
        tables = dict(base.chain_tables)
        for table in self._tables:
            tables[table.table_id] = [*tables.get(table.table_id, ()), table]
        return RoutingInfo(
            version=version,
            cluster_id=base.cluster_id,
            nodes={**base.nodes, **self._nodes},
            chain_tables=tables,
            chains={**base.chains, **self._chains},
            targets=targets,
        )
