"""Parts of the storage service with no RPC of their own: chain roles, chunk locks, remembered
answers, local-state and update-version rules, the target registry, the free-space reserve."""

from storage.components.chain_position import ChainPosition, locate, update_successor
from storage.components.chunk_locks import ChunkLocks
from storage.components.dedup import RequestDedup
from storage.components.free_space import FreeSpaceGuard, SpaceReserve
from storage.components.local_state import next_local_state, public_state_of
from storage.components.targets import Target, TargetRegistry, open_disk_target
from storage.components.update_rules import HopAction, plan_head, plan_hop

__all__ = [
    "ChainPosition",
    "ChunkLocks",
    "FreeSpaceGuard",
    "HopAction",
    "RequestDedup",
    "SpaceReserve",
    "Target",
    "TargetRegistry",
    "locate",
    "next_local_state",
    "open_disk_target",
    "plan_head",
    "plan_hop",
    "public_state_of",
    "update_successor",
]
