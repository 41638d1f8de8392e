"""The chain updater's transition rule: a chain's next public states from its current public states
and its targets' local states (DESIGN.md section 6). Pure functions: no I/O, no clock.

One update, per target (old public state x local state -> new public state). "Serving after the
update" counts every target that is SERVING in the result.

=========  =========================  ==================================  ==========================
old        local UPTODATE             local ONLINE                        local OFFLINE
=========  =========================  ==================================  ==========================
SERVING    SERVING                    SERVING, unless another target is   OFFLINE if a target is
                                      SERVING and UPTODATE after the      serving after the update;
                                      update: then WAITING (it restarted  else the first old SERVING
                                      and may be stale: resync it)        is LASTSRV, the rest OFFLINE
LASTSRV    SERVING if the chain had no SERVING target, no sync just       LASTSRV if the chain had no
           finished, and it is the first live LASTSRV; else WAITING       SERVING target and nothing
                                                                          serves after the update;
                                                                          else OFFLINE
SYNCING    SERVING (sync done)        SYNCING if a target is serving      OFFLINE
                                      after the update (the first one
                                      only); else WAITING
WAITING    WAITING (a stale claim:    SYNCING if a target is serving      OFFLINE
           it must report ONLINE      after the update, none is SYNCING
           before it can sync)        and it is the first such WAITING;
                                      else WAITING
OFFLINE    WAITING                    WAITING                             OFFLINE
=========  =========================  ==================================  ==========================

Consequences: a live target is never OFFLINE and a dead one is OFFLINE or LASTSRV; nothing becomes
SERVING from WAITING or OFFLINE (a returning target always syncs first, one step per state); at
most one target per chain is SYNCING, and only while something is SERVING; LASTSRV exists only
while nothing is SERVING; a chain that had a SERVING or LASTSRV target keeps one. Inconsistent
input (several SYNCING, a LASTSRV next to a SERVING) is repaired toward those invariants.

What the rule expects of storage nodes (3FS behaviour): a target reports UPTODATE only for data
it knows is current (it finished a sync, or mgmtd shows it SERVING), and drops an UPTODATE claim
when mgmtd shows it WAITING, OFFLINE or LASTSRV; a restarted target reports ONLINE.

Then the chain is reordered SERVING, LASTSRV, SYNCING, WAITING, OFFLINE (``PublicTargetState``'s
numeric order), stable by old position within a group, SERVING targets first in
``preferred_order``: the head is the first SERVING target and failed targets move to the tail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import ChainInfo, ChainTarget, LocalTargetState, PublicTargetState

SERVING = PublicTargetState.SERVING
LASTSRV = PublicTargetState.LASTSRV
SYNCING = PublicTargetState.SYNCING
WAITING = PublicTargetState.WAITING
OFFLINE = PublicTargetState.OFFLINE


def update_chain_targets(
    targets: Sequence[ChainTarget],
    local_states: Mapping[int, LocalTargetState],
    preferred_order: Sequence[int] = (),
) -> list[ChainTarget]:
    """The chain's targets after one update (see the module docstring for the rule).

    ``targets`` is the chain in its current order (head first); ``local_states[target_id]`` is each
    target's current local state, a missing id counting as OFFLINE (the caller maps silent,
    failed and disabled nodes to OFFLINE too). ``preferred_order`` orders the SERVING targets;
    ids it does not name keep their relative order after the named ones, and ids that are not in
    the chain are ignored. Returns a new list with the same target ids; compare it with
    ``chain_changed`` to decide whether the chain version moves. Raises ``ThreeFSError``
    (INVALID_ARG) when a target id appears twice.
    """
    ids = [target.target_id for target in targets]
    if len(set(ids)) != len(ids):
        raise ThreeFSError(Code.INVALID_ARG, f"chain names a target twice: {ids}")
    old = {target.target_id: target.public_state for target in targets}
    local = {tid: local_states.get(tid, LocalTargetState.OFFLINE) for tid in ids}
    alive = {tid: local[tid] != LocalTargetState.OFFLINE for tid in ids}
    in_state = {state: [tid for tid in ids if old[tid] == state] for state in PublicTargetState}
    new: dict[int, PublicTargetState] = {}

    # SERVING: keep the live ones; one that reports ONLINE (restarted, maybe stale) is resynced
    # when a replica known to be current (SERVING and UPTODATE, or just synced) remains.
    synced = [tid for tid in in_state[SYNCING] if local[tid] == LocalTargetState.UPTODATE]
    current = [tid for tid in in_state[SERVING] if local[tid] == LocalTargetState.UPTODATE] + synced
    for tid in in_state[SERVING]:
        if local[tid] == LocalTargetState.UPTODATE:
            new[tid] = SERVING
        elif alive[tid]:
            new[tid] = WAITING if current else SERVING
    for tid in synced:
        new[tid] = SERVING
    serving = any(state == SERVING for state in new.values())

    failed_serving = [tid for tid in in_state[SERVING] if not alive[tid]]
    if serving:
        for tid in failed_serving:
            new[tid] = OFFLINE
        for tid in in_state[LASTSRV]:  # superseded by the serving targets
            new[tid] = WAITING if alive[tid] else OFFLINE
    elif failed_serving:
        # Every serving target failed in this update: the first one (the head, which failed last
        # or together with the others) holds every acknowledged write and must come back first.
        for tid in failed_serving:
            new[tid] = LASTSRV if tid == failed_serving[0] else OFFLINE
        for tid in in_state[LASTSRV]:
            new[tid] = WAITING if alive[tid] else OFFLINE
    else:
        returning = [tid for tid in in_state[LASTSRV] if alive[tid]]
        for tid in in_state[LASTSRV]:
            if not returning:
                new[tid] = LASTSRV  # still down: the chain waits for it (or for rotate_last_serving)
            elif tid == returning[0]:
                new[tid] = SERVING  # its data is the latest that exists, even if it says ONLINE
            else:
                new[tid] = WAITING if alive[tid] else OFFLINE
        serving = bool(returning)

    # SYNCING and WAITING: at most one sync at a time, and only from a serving predecessor. The
    # running sync keeps its slot; otherwise the first WAITING in chain order that reports ONLINE
    # starts. A target only just made WAITING waits for the next update.
    syncing: int | None = None
    for tid in in_state[SYNCING]:
        if tid in new:
            continue
        if not alive[tid]:
            new[tid] = OFFLINE
        elif serving and syncing is None:
            new[tid] = SYNCING
            syncing = tid
        else:
            new[tid] = WAITING
    for tid in in_state[WAITING]:
        if not alive[tid]:
            new[tid] = OFFLINE
        elif serving and syncing is None and local[tid] == LocalTargetState.ONLINE:
            new[tid] = SYNCING
            syncing = tid
        else:
            new[tid] = WAITING
    for tid in in_state[OFFLINE]:
        new[tid] = WAITING if alive[tid] else OFFLINE

    return order_chain([ChainTarget(tid, new[tid]) for tid in ids], preferred_order)


def order_chain(targets: Sequence[ChainTarget], preferred_order: Sequence[int] = ()) -> list[ChainTarget]:
    """``targets`` sorted SERVING, LASTSRV, SYNCING, WAITING, OFFLINE, stable within a state; the
    SERVING targets named in ``preferred_order`` come first, in that order."""
    rank = {tid: index for index, tid in enumerate(preferred_order)}
    unnamed = len(rank)

    def key(item: tuple[int, ChainTarget]) -> tuple[int, int, int]:
        position, target = item
        preference = rank.get(target.target_id, unnamed) if target.public_state == SERVING else 0
        return (int(target.public_state), preference, position)

    return [target for _, target in sorted(enumerate(targets), key=key)]


def chain_changed(old: Sequence[ChainTarget], new: Sequence[ChainTarget]) -> bool:
    """Whether the chain differs (order or any state): the chain version must then move."""
    return list(old) != list(new)


def apply_update(
    chain: ChainInfo,
    local_states: Mapping[int, LocalTargetState],
    now_ms: int,
    grace_ms: int,
) -> ChainInfo | None:
    """The chain after one update, with ``chain_version`` + 1, or None when nothing changes.

    A chain is left alone (None) while ``now_ms < chain.created_ms + grace_ms``: its storage
    nodes may not have reported yet, and failing a new chain's targets for want of a heartbeat
    would only force needless resyncs. The input is not modified.
    """
    if now_ms < chain.created_ms + grace_ms:
        return None
    targets = update_chain_targets(chain.targets, local_states, chain.preferred_order)
    if not chain_changed(chain.targets, targets):
        return None
    return msgspec.structs.replace(chain, targets=targets, chain_version=chain.chain_version + 1)


def rotate_last_serving(chain: ChainInfo) -> list[ChainTarget]:
    """The admin answer to a LASTSRV target lost for good: the chain's first LASTSRV target goes
    to the tail as OFFLINE, the first of the other targets (in chain order) becomes LASTSRV and
    every other target OFFLINE (a live one returns as WAITING at the next update, then syncs
    from the new LASTSRV once it serves). Whatever only the old LASTSRV held is lost.

    Raises ``ThreeFSError`` (MGMTD_INVALID_TOPOLOGY) when the chain has no LASTSRV target, has a
    SERVING one (nothing is lost then), or has no other target.
    """
    lastsrv = [target for target in chain.targets if target.public_state == LASTSRV]
    if not lastsrv or any(target.public_state == SERVING for target in chain.targets):
        raise ThreeFSError(
            Code.MGMTD_INVALID_TOPOLOGY, f"chain {chain.chain_id} has no LASTSRV target, or one is SERVING"
        )
    if len(chain.targets) < 2:
        raise ThreeFSError(
            Code.MGMTD_INVALID_TOPOLOGY,
            f"chain {chain.chain_id} has no other target to take over from its LASTSRV target",
        )
    lost = lastsrv[0]
    others = [target for target in chain.targets if target.target_id != lost.target_id]
    rotated = [ChainTarget(others[0].target_id, LASTSRV)]
    rotated += [ChainTarget(target.target_id, OFFLINE) for target in others[1:]]
    rotated.append(ChainTarget(lost.target_id, OFFLINE))
    return rotated
