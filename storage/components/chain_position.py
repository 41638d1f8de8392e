"""Where one of this node's targets stands in a chain: the roles the write and read paths need.

Pure lookups over one ``ChainInfo`` (mgmtd orders a chain SERVING, LASTSRV, SYNCING, WAITING,
OFFLINE, so the head is the first SERVING target):

- the **head** takes client updates: the first SERVING target;
- an update travels to the **successor**: the next target after this one that is SERVING or
  SYNCING (WAITING and OFFLINE targets get nothing; they are resynced later);
- the **predecessor** is the target whose successor this one is: the only one allowed to forward
  to it (updates and resync);
- the **read tail** is the last SERVING target: its committed version is the latest one, so it
  answers reads even of a chunk with an update in flight.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from threefs.wire.mgmtd import ChainInfo, ChainTarget, PublicTargetState

__all__ = ["ChainPosition", "locate", "update_successor"]

SERVING = PublicTargetState.SERVING
SYNCING = PublicTargetState.SYNCING
_RECEIVES_UPDATES = (SERVING, SYNCING)


def update_successor(chain: ChainInfo, target_id: int) -> ChainTarget | None:
    """The target after ``target_id`` that receives its updates (SERVING or SYNCING), or None."""
    ids = [t.target_id for t in chain.targets]
    if target_id not in ids:
        return None
    for replica in chain.targets[ids.index(target_id) + 1 :]:
        if replica.public_state in _RECEIVES_UPDATES:
            return replica
    return None


@dataclass(frozen=True, slots=True)
class ChainPosition:
    """Target ``target_id`` of this node, at ``index`` in ``chain``, in public state ``state``."""

    chain: ChainInfo
    target_id: int
    index: int
    state: PublicTargetState

    @property
    def chain_id(self) -> int:
        return self.chain.chain_id

    @property
    def chain_version(self) -> int:
        return self.chain.chain_version

    @property
    def head_id(self) -> int:
        """The first SERVING target (0 when none is)."""
        for replica in self.chain.targets:
            if replica.public_state == SERVING:
                return replica.target_id
        return 0

    @property
    def is_head(self) -> bool:
        return self.state == SERVING and self.head_id == self.target_id

    @property
    def successor(self) -> ChainTarget | None:
        """The next target that receives this target's updates (None: this one is the last)."""
        return update_successor(self.chain, self.target_id)

    @property
    def predecessor_id(self) -> int:
        """The target that forwards updates to this one (0: none; this one is the head)."""
        for replica in reversed(self.chain.targets[: self.index]):
            if replica.public_state in _RECEIVES_UPDATES:
                return replica.target_id
        return 0

    @property
    def read_tail_id(self) -> int:
        """The last SERVING target (0 when none is)."""
        serving = [r.target_id for r in self.chain.targets if r.public_state == SERVING]
        return serving[-1] if serving else 0

    @property
    def receives_updates(self) -> bool:
        return self.state in _RECEIVES_UPDATES

    def describe(self) -> str:
        states = ", ".join(f"{t.target_id}:{t.public_state.name}" for t in self.chain.targets)
        return f"chain {self.chain_id} version {self.chain_version} [{states}]"


def locate(chain: ChainInfo, local_target_ids: Container[int]) -> ChainPosition | None:
    """The position of the first of ``local_target_ids`` in ``chain`` (None: none is in it; a
    chain never holds two targets of one node)."""
    for index, replica in enumerate(chain.targets):
        if replica.target_id in local_target_ids:
            return ChainPosition(chain, replica.target_id, index, replica.public_state)
    return None
