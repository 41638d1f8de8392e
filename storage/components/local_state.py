"""The local state a target reports to mgmtd, from what it knows and what routing shows.

The contract with mgmtd's chain rules (docs/mgmtd.md, "Choices in the rules"): a target claims
UPTODATE only for data it knows to be current, drops the claim when routing shows it WAITING,
OFFLINE or LASTSRV, and a restarted target reports ONLINE until it is SERVING again. In detail
(``next_local_state``):

=====================  =====================================================================
routing shows          next local state
=====================  =====================================================================
(the disk failed)      OFFLINE, for good (until the process restarts)
in no chain            ONLINE
SERVING                UPTODATE if already UPTODATE. An ONLINE target (it just started) is
                       *promoted* to UPTODATE when ``promote`` is set (the heartbeat worker
                       sets it with routing fetched just before the heartbeat), mgmtd has
                       *recorded* its ONLINE report (so the chain updater has seen the
                       restart), and the updater would keep it SERVING: no other SERVING
                       target of the chain is UPTODATE (a whole-chain restart, or a LASTSRV
                       that came back), or the chain never changed since it was created
                       (version 1: every replica has been in it all along, so none can be
                       behind; this keeps a new cluster from resyncing). Otherwise it stays
                       ONLINE and mgmtd resyncs it.
SYNCING                UPTODATE only when a SyncDone was received at the chain's *current*
                       version (a sync done under an older version may have missed writes
                       made while the target was briefly out of SYNCING); else ONLINE
LASTSRV, WAITING,      ONLINE (a LASTSRV comes back to SERVING on any live report; a WAITING
OFFLINE                target must report ONLINE before it may sync)
=====================  =====================================================================

Why the care: mgmtd turns SYNCING + UPTODATE into SERVING, so an UPTODATE claim that reaches it
after the chain moved the target SERVING -> WAITING -> SYNCING would skip a needed sync. Claims
are therefore made from fresh routing (promotion) or bound to a chain version (sync done).
"""

from __future__ import annotations

from threefs.wire.mgmtd import ChainInfo, LocalTargetState, PublicTargetState, RoutingInfo

__all__ = ["chain_of", "next_local_state", "public_state_of"]

UPTODATE = LocalTargetState.UPTODATE
ONLINE = LocalTargetState.ONLINE
OFFLINE = LocalTargetState.OFFLINE


def chain_of(routing: RoutingInfo | None, target_id: int) -> ChainInfo | None:
    """The chain the target is in (None: no routing, unknown target, or in no chain)."""
    if routing is None:
        return None
    info = routing.targets.get(target_id)
    if info is None or not info.chain_id:
        return None
    chain = routing.chains.get(info.chain_id)
    if chain is None or all(t.target_id != target_id for t in chain.targets):
        return None
    return chain


def public_state_of(routing: RoutingInfo | None, target_id: int) -> PublicTargetState | None:
    """The target's public state in its chain (None: not in a chain of ``routing``)."""
    chain = chain_of(routing, target_id)
    if chain is None:
        return None
    return next(t.public_state for t in chain.targets if t.target_id == target_id)


def next_local_state(
    current: LocalTargetState,
    target_id: int,
    routing: RoutingInfo | None,
    *,
    failed: bool = False,
    synced_version: int = 0,
    promote: bool = False,
) -> LocalTargetState:
    """The state to report next for ``target_id`` (see the module docstring).

    ``current`` is the state reported so far; ``failed`` whether the target's disk failed;
    ``synced_version`` the chain version of the last SyncDone (0: none); ``promote`` whether an
    ONLINE target may become UPTODATE now (only with freshly fetched routing).
    """
    if failed:
        return OFFLINE
    if routing is None:
        return current
    chain = chain_of(routing, target_id)
    if chain is None:
        return ONLINE
    public = next(t.public_state for t in chain.targets if t.target_id == target_id)
    if public == PublicTargetState.SERVING:
        if current == UPTODATE:
            return UPTODATE
        if not promote or routing.targets[target_id].local_state != ONLINE:
            return ONLINE  # not now, or mgmtd has not seen this target's ONLINE report yet
        others_current = any(
            t.public_state == PublicTargetState.SERVING
            and t.target_id != target_id
            and t.target_id in routing.targets
            and routing.targets[t.target_id].local_state == UPTODATE
            for t in chain.targets
        )
        return UPTODATE if chain.chain_version == 1 or not others_current else ONLINE
    if public == PublicTargetState.SYNCING:
        return UPTODATE if synced_version == chain.chain_version else ONLINE
    return ONLINE
