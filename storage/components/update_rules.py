"""The version rules of the CRAQ write path: which version the head gives an update, and what a
downstream target does with a forwarded one. Pure functions over a chunk's ``ChunkMeta``.

Versions: the head assigns ``update_version = commit_version + 1`` under the chunk lock, so one
version number names one content on every replica. Two things break the simple case, and both
are resolved by sending the **whole chunk** (a REPLACE) instead of the incremental update:

- a *leftover*: the chunk is DIRTY at the head although nothing is in flight (an earlier update
  whose outcome downstream is unknown: the head gave up, or crashed). The successors may have
  committed that version, so it must not be reused: the head gives the new update the version
  after the leftover one and sends the result as a REPLACE (``plan_head``);
- a successor that cannot apply an incremental update (missing the chunk, behind, or holding
  the same version with other content) answers STALE_UPDATE or a checksum that differs; its
  predecessor then sends the same version as a REPLACE, once (``ops.forward``).

A forwarded update at a hop (``plan_hop``):

==========================  ==========================================================
update                      action
==========================  ==========================================================
WRITE / TRUNCATE            APPLY when ``update_version == commit_version + 1``;
                            REPLAY (answer the committed meta) when it equals
                            ``commit_version`` (a retried forward already applied);
                            else STALE (the predecessor escalates to a REPLACE)
REPLACE                     APPLY when newer than ``commit_version``; when equal, REPLAY
                            if the length and checksum are the same, else FORCE (drop the
                            chunk, then apply: the predecessor's copy of that version wins,
                            e.g. after an increment was applied to a diverged chunk); when
                            older, FORCE if the chunk was last written under an older chain
                            version (it diverged before the chain changed), else STALE
REMOVE                      APPLY (the chunk goes on every replica)
==========================  ==========================================================

An older REPLACE within one chain version can only be a duplicate delayed past a newer update
(STALE, so it cannot roll the chunk back); the RPC deadline, which travels with every forward,
normally cancels those first.
"""

from __future__ import annotations

from enum import Enum

from storage.store.interface import ChunkMeta, ChunkState
from threefs.wire.storage import UpdateType

__all__ = ["HopAction", "plan_head", "plan_hop"]


class HopAction(Enum):
    APPLY = "apply"
    REPLAY = "replay"
    FORCE = "force"
    STALE = "stale"


def plan_head(meta: ChunkMeta | None, update_type: UpdateType) -> tuple[int, bool]:
    """``(update_version, as_replace)`` for a client update at the head: the next version, and
    whether the update must travel as a whole-chunk REPLACE (a leftover pending version)."""
    if meta is None:
        return 1, False
    if meta.state == ChunkState.DIRTY or meta.update_version > meta.commit_version:
        return meta.update_version + 1, update_type in (UpdateType.WRITE, UpdateType.TRUNCATE)
    return meta.commit_version + 1, False


def plan_hop(
    meta: ChunkMeta | None,
    update_type: UpdateType,
    update_version: int,
    chain_version: int,
    payload_length: int,
    payload_crc32c: int,
) -> HopAction:
    """What a downstream target does with a forwarded update (see the module docstring)."""
    if update_type == UpdateType.REMOVE:
        return HopAction.APPLY
    commit_version = meta.commit_version if meta is not None else 0
    if update_type == UpdateType.REPLACE:
        if meta is None or update_version > commit_version:
            return HopAction.APPLY
        if update_version == commit_version:
            same = meta.length == payload_length and meta.crc32c == payload_crc32c
            return HopAction.REPLAY if same else HopAction.FORCE
        return HopAction.FORCE if meta.chain_version < chain_version else HopAction.STALE
    if update_version == commit_version + 1:
        return HopAction.APPLY
    if meta is not None and commit_version > 0 and update_version == commit_version:
        return HopAction.REPLAY
    return HopAction.STALE
