"""The chain updater's transition rule: every (public state, local state, chain situation) case,
ordering, a multi-step life of a chain, the admin rotation, and invariants over random chains."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mgmtd.components import (
    apply_update,
    chain_changed,
    order_chain,
    rotate_last_serving,
    update_chain_targets,
)
from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import ChainInfo, ChainTarget, LocalTargetState, PublicTargetState

PS = PublicTargetState
LS = LocalTargetState

# The subject X is target 1. Peers (target 2, 3): public state / local state.
SITUATIONS = {
    "alone": ["X"],
    "serving_peer": ["X", "SERVING/UPTODATE"],
    "stale_serving_peer": ["X", "SERVING/ONLINE"],
    "syncing_peer": ["SERVING/UPTODATE", "SYNCING/ONLINE", "X"],
    "waiting_peer_ahead": ["SERVING/UPTODATE", "WAITING/ONLINE", "X"],
    "no_serving_peer": ["X", "OFFLINE/OFFLINE"],
    "lastsrv_peer_down": ["LASTSRV/OFFLINE", "X"],
}

# old public state, local state, situation -> new public state of X
TABLE = """
SERVING  UPTODATE  alone               SERVING
SERVING  ONLINE    alone               SERVING
SERVING  OFFLINE   alone               LASTSRV
LASTSRV  UPTODATE  alone               SERVING
LASTSRV  ONLINE    alone               SERVING
LASTSRV  OFFLINE   alone               LASTSRV
SYNCING  UPTODATE  alone               SERVING
SYNCING  ONLINE    alone               WAITING
SYNCING  OFFLINE   alone               OFFLINE
WAITING  UPTODATE  alone               WAITING
WAITING  ONLINE    alone               WAITING
WAITING  OFFLINE   alone               OFFLINE
OFFLINE  UPTODATE  alone               WAITING
OFFLINE  ONLINE    alone               WAITING
OFFLINE  OFFLINE   alone               OFFLINE

SERVING  UPTODATE  serving_peer        SERVING
SERVING  ONLINE    serving_peer        WAITING
SERVING  OFFLINE   serving_peer        OFFLINE
LASTSRV  UPTODATE  serving_peer        WAITING
LASTSRV  ONLINE    serving_peer        WAITING
LASTSRV  OFFLINE   serving_peer        OFFLINE
SYNCING  UPTODATE  serving_peer        SERVING
SYNCING  ONLINE    serving_peer        SYNCING
SYNCING  OFFLINE   serving_peer        OFFLINE
WAITING  UPTODATE  serving_peer        WAITING
WAITING  ONLINE    serving_peer        SYNCING
WAITING  OFFLINE   serving_peer        OFFLINE
OFFLINE  UPTODATE  serving_peer        WAITING
OFFLINE  ONLINE    serving_peer        WAITING
OFFLINE  OFFLINE   serving_peer        OFFLINE

SERVING  UPTODATE  stale_serving_peer  SERVING
SERVING  ONLINE    stale_serving_peer  SERVING
SERVING  OFFLINE   stale_serving_peer  OFFLINE
LASTSRV  UPTODATE  stale_serving_peer  WAITING
LASTSRV  ONLINE    stale_serving_peer  WAITING
LASTSRV  OFFLINE   stale_serving_peer  OFFLINE
SYNCING  UPTODATE  stale_serving_peer  SERVING
SYNCING  ONLINE    stale_serving_peer  SYNCING
SYNCING  OFFLINE   stale_serving_peer  OFFLINE
WAITING  UPTODATE  stale_serving_peer  WAITING
WAITING  ONLINE    stale_serving_peer  SYNCING
WAITING  OFFLINE   stale_serving_peer  OFFLINE
OFFLINE  UPTODATE  stale_serving_peer  WAITING
OFFLINE  ONLINE    stale_serving_peer  WAITING
OFFLINE  OFFLINE   stale_serving_peer  OFFLINE

SERVING  UPTODATE  syncing_peer        SERVING
SERVING  ONLINE    syncing_peer        WAITING
SERVING  OFFLINE   syncing_peer        OFFLINE
LASTSRV  UPTODATE  syncing_peer        WAITING
LASTSRV  ONLINE    syncing_peer        WAITING
LASTSRV  OFFLINE   syncing_peer        OFFLINE
SYNCING  UPTODATE  syncing_peer        SERVING
SYNCING  ONLINE    syncing_peer        WAITING
SYNCING  OFFLINE   syncing_peer        OFFLINE
WAITING  UPTODATE  syncing_peer        WAITING
WAITING  ONLINE    syncing_peer        WAITING
WAITING  OFFLINE   syncing_peer        OFFLINE
OFFLINE  UPTODATE  syncing_peer        WAITING
OFFLINE  ONLINE    syncing_peer        WAITING
OFFLINE  OFFLINE   syncing_peer        OFFLINE

SERVING  UPTODATE  waiting_peer_ahead  SERVING
SERVING  ONLINE    waiting_peer_ahead  WAITING
SERVING  OFFLINE   waiting_peer_ahead  OFFLINE
LASTSRV  UPTODATE  waiting_peer_ahead  WAITING
LASTSRV  ONLINE    waiting_peer_ahead  WAITING
LASTSRV  OFFLINE   waiting_peer_ahead  OFFLINE
SYNCING  UPTODATE  waiting_peer_ahead  SERVING
SYNCING  ONLINE    waiting_peer_ahead  SYNCING
SYNCING  OFFLINE   waiting_peer_ahead  OFFLINE
WAITING  UPTODATE  waiting_peer_ahead  WAITING
WAITING  ONLINE    waiting_peer_ahead  WAITING
WAITING  OFFLINE   waiting_peer_ahead  OFFLINE
OFFLINE  UPTODATE  waiting_peer_ahead  WAITING
OFFLINE  ONLINE    waiting_peer_ahead  WAITING
OFFLINE  OFFLINE   waiting_peer_ahead  OFFLINE

SERVING  UPTODATE  no_serving_peer     SERVING
SERVING  ONLINE    no_serving_peer     SERVING
SERVING  OFFLINE   no_serving_peer     LASTSRV
LASTSRV  UPTODATE  no_serving_peer     SERVING
LASTSRV  ONLINE    no_serving_peer     SERVING
LASTSRV  OFFLINE   no_serving_peer     LASTSRV
SYNCING  UPTODATE  no_serving_peer     SERVING
SYNCING  ONLINE    no_serving_peer     WAITING
SYNCING  OFFLINE   no_serving_peer     OFFLINE
WAITING  UPTODATE  no_serving_peer     WAITING
WAITING  ONLINE    no_serving_peer     WAITING
WAITING  OFFLINE   no_serving_peer     OFFLINE
OFFLINE  UPTODATE  no_serving_peer     WAITING
OFFLINE  ONLINE    no_serving_peer     WAITING
OFFLINE  OFFLINE   no_serving_peer     OFFLINE

SERVING  UPTODATE  lastsrv_peer_down   SERVING
SERVING  ONLINE    lastsrv_peer_down   SERVING
SERVING  OFFLINE   lastsrv_peer_down   LASTSRV
LASTSRV  UPTODATE  lastsrv_peer_down   SERVING
LASTSRV  ONLINE    lastsrv_peer_down   SERVING
LASTSRV  OFFLINE   lastsrv_peer_down   LASTSRV
SYNCING  UPTODATE  lastsrv_peer_down   SERVING
SYNCING  ONLINE    lastsrv_peer_down   WAITING
SYNCING  OFFLINE   lastsrv_peer_down   OFFLINE
WAITING  UPTODATE  lastsrv_peer_down   WAITING
WAITING  ONLINE    lastsrv_peer_down   WAITING
WAITING  OFFLINE   lastsrv_peer_down   OFFLINE
OFFLINE  UPTODATE  lastsrv_peer_down   WAITING
OFFLINE  ONLINE    lastsrv_peer_down   WAITING
OFFLINE  OFFLINE   lastsrv_peer_down   OFFLINE
"""
ROWS = [line.split() for line in TABLE.strip().splitlines() if line.strip()]


def build(situation: str, old: str, local: str) -> tuple[list[ChainTarget], dict[int, LocalTargetState]]:
    """The chain of a situation with X = target 1 in (old, local); peers are targets 2, 3, ..."""
    targets, local_states, next_peer = [], {}, 2
    for entry in SITUATIONS[situation]:
        if entry == "X":
            target_id, public, reported = 1, old, local
        else:
            target_id, (public, reported) = next_peer, entry.split("/")
            next_peer += 1
        targets.append(ChainTarget(target_id, PS[public]))
        local_states[target_id] = LS[reported]
    return targets, local_states


def states(targets: list[ChainTarget]) -> str:
    """``"1:SERVING 2:OFFLINE"``: a chain in one readable string."""
    return " ".join(f"{target.target_id}:{target.public_state.name}" for target in targets)


def test_the_table_covers_every_case():
    cases = {(old, local, situation) for old, local, situation, _ in ROWS}
    assert len(cases) == len(ROWS) == len(PS) * len(LS) * len(SITUATIONS)


@pytest.mark.parametrize(("old", "local", "situation", "expected"), ROWS, ids=["-".join(row) for row in ROWS])
def test_transition(old, local, situation, expected):
    targets, local_states = build(situation, old, local)
    new = {target.target_id: target.public_state for target in update_chain_targets(targets, local_states)}
    assert new[1] == PS[expected]


# ----------------------------------------------------------------------------- specific rules


def test_a_restarted_serving_target_is_resynced_while_a_current_replica_serves():
    targets = [ChainTarget(1, PS.SERVING), ChainTarget(2, PS.SERVING), ChainTarget(3, PS.SERVING)]
    new = update_chain_targets(targets, {1: LS.ONLINE, 2: LS.UPTODATE, 3: LS.ONLINE})
    assert states(new) == "2:SERVING 1:WAITING 3:WAITING"
    # Everyone restarted: no replica is known to be better, the chain keeps serving.
    new = update_chain_targets(targets, {1: LS.ONLINE, 2: LS.ONLINE, 3: LS.ONLINE})
    assert states(new) == "1:SERVING 2:SERVING 3:SERVING"


def test_a_finished_sync_counts_as_a_current_replica():
    targets = [ChainTarget(1, PS.SERVING), ChainTarget(2, PS.SYNCING)]
    assert states(update_chain_targets(targets, {1: LS.ONLINE, 2: LS.UPTODATE})) == "2:SERVING 1:WAITING"
    # The sync finished as the serving target failed: no data is lost, so no LASTSRV.
    assert states(update_chain_targets(targets, {2: LS.UPTODATE})) == "2:SERVING 1:OFFLINE"


def test_when_every_serving_target_fails_the_first_one_is_lastsrv():
    targets = [ChainTarget(t, PS.SERVING) for t in (1, 2, 3)] + [ChainTarget(4, PS.WAITING)]
    new = update_chain_targets(targets, {4: LS.ONLINE})
    assert states(new) == "1:LASTSRV 4:WAITING 2:OFFLINE 3:OFFLINE"


def test_several_lastsrv_targets_the_first_live_one_serves():
    targets = [ChainTarget(1, PS.LASTSRV), ChainTarget(2, PS.LASTSRV), ChainTarget(3, PS.LASTSRV)]
    assert states(update_chain_targets(targets, {})) == "1:LASTSRV 2:LASTSRV 3:LASTSRV"
    new = update_chain_targets(targets, {2: LS.ONLINE, 3: LS.ONLINE})
    assert states(new) == "2:SERVING 3:WAITING 1:OFFLINE"


def test_two_syncing_targets_are_cut_down_to_one():
    targets = [ChainTarget(1, PS.SERVING), ChainTarget(2, PS.SYNCING), ChainTarget(3, PS.SYNCING)]
    new = update_chain_targets(targets, {1: LS.UPTODATE, 2: LS.ONLINE, 3: LS.ONLINE})
    assert states(new) == "1:SERVING 2:SYNCING 3:WAITING"


def test_the_slot_of_a_finished_sync_goes_to_the_first_waiting_target():
    targets = [ChainTarget(1, PS.SERVING), ChainTarget(2, PS.SYNCING)] + [
        ChainTarget(t, PS.WAITING) for t in (3, 4)
    ]
    local = {1: LS.UPTODATE, 2: LS.UPTODATE, 3: LS.ONLINE, 4: LS.ONLINE}
    assert states(update_chain_targets(targets, local)) == "1:SERVING 2:SERVING 3:SYNCING 4:WAITING"


def test_a_missing_local_state_counts_as_offline():
    targets = [ChainTarget(1, PS.SERVING), ChainTarget(2, PS.SERVING)]
    assert states(update_chain_targets(targets, {2: LS.UPTODATE})) == "2:SERVING 1:OFFLINE"


def test_a_target_named_twice_is_refused():
    with pytest.raises(ThreeFSError) as info:
        update_chain_targets([ChainTarget(1, PS.SERVING), ChainTarget(1, PS.OFFLINE)], {})
    assert info.value.code == Code.INVALID_ARG


def test_an_empty_chain_stays_empty():
    assert update_chain_targets([], {}) == []


def test_order_groups_states_and_follows_the_preferred_order():
    targets = [
        ChainTarget(5, PS.OFFLINE),
        ChainTarget(4, PS.SERVING),
        ChainTarget(3, PS.WAITING),
        ChainTarget(2, PS.SERVING),
        ChainTarget(6, PS.SERVING),
        ChainTarget(1, PS.SYNCING),
    ]
    assert states(order_chain(targets)) == "4:SERVING 2:SERVING 6:SERVING 1:SYNCING 3:WAITING 5:OFFLINE"
    # Named SERVING targets first, in that order; unnamed ones after, in chain order; a named
    # target that is not serving and an unknown id change nothing.
    ordered = order_chain(targets, [6, 99, 3, 2])
    assert states(ordered) == "6:SERVING 2:SERVING 4:SERVING 1:SYNCING 3:WAITING 5:OFFLINE"


def test_the_preferred_order_is_applied_by_the_update():
    targets = [ChainTarget(t, PS.SERVING) for t in (1, 2, 3)]
    local = dict.fromkeys((1, 2, 3), LS.UPTODATE)
    assert states(update_chain_targets(targets, local, [3, 1])) == "3:SERVING 1:SERVING 2:SERVING"


def test_chain_changed_sees_order_and_states():
    a = [ChainTarget(1, PS.SERVING), ChainTarget(2, PS.SERVING)]
    assert not chain_changed(a, list(a))
    assert chain_changed(a, a[::-1])
    assert chain_changed(a, [a[0], ChainTarget(2, PS.OFFLINE)])


# ----------------------------------------------------------------------------- apply_update


def chain_info(*pairs: tuple[int, PublicTargetState], **fields) -> ChainInfo:
    return ChainInfo(chain_id=7, targets=[ChainTarget(t, s) for t, s in pairs], **fields)


def test_apply_update_bumps_the_version_only_on_a_change():
    chain = chain_info((1, PS.SERVING), (2, PS.SERVING), chain_version=4, created_ms=1000)
    assert apply_update(chain, {1: LS.UPTODATE, 2: LS.UPTODATE}, now_ms=5000, grace_ms=100) is None
    updated = apply_update(chain, {1: LS.UPTODATE}, now_ms=5000, grace_ms=100)
    assert updated is not None and updated.chain_version == 5 and updated.chain_id == 7
    assert states(updated.targets) == "1:SERVING 2:OFFLINE"
    assert chain.chain_version == 4 and states(chain.targets) == "1:SERVING 2:SERVING"  # untouched


def test_apply_update_leaves_a_new_chain_alone_during_its_grace_period():
    chain = chain_info((1, PS.SERVING), (2, PS.SERVING), created_ms=1000)
    assert apply_update(chain, {}, now_ms=1000, grace_ms=500) is None
    assert apply_update(chain, {}, now_ms=1499, grace_ms=500) is None
    after = apply_update(chain, {}, now_ms=1500, grace_ms=500)
    assert after is not None and states(after.targets) == "1:LASTSRV 2:OFFLINE"


def test_apply_update_uses_the_chains_preferred_order():
    chain = chain_info((1, PS.SERVING), (2, PS.SERVING), preferred_order=[2, 1])
    updated = apply_update(chain, {1: LS.UPTODATE, 2: LS.UPTODATE}, now_ms=0, grace_ms=0)
    assert updated is not None and states(updated.targets) == "2:SERVING 1:SERVING"


# ----------------------------------------------------------------------------- rotate_last_serving


def test_rotate_last_serving_hands_over_to_the_next_target():
    chain = chain_info((1, PS.LASTSRV), (2, PS.WAITING), (3, PS.OFFLINE))
    rotated = rotate_last_serving(chain)
    assert states(rotated) == "2:LASTSRV 3:OFFLINE 1:OFFLINE"
    # The new LASTSRV serves once alive; the old one, back, must sync like any other target.
    local = {1: LS.ONLINE, 2: LS.ONLINE, 3: LS.ONLINE}
    assert states(update_chain_targets(rotated, local)) == "2:SERVING 3:WAITING 1:WAITING"


@pytest.mark.parametrize(
    "pairs",
    [
        [(1, PS.SERVING), (2, PS.OFFLINE)],  # no LASTSRV
        [(1, PS.LASTSRV)],  # nobody to hand over to
        [(1, PS.SERVING), (2, PS.LASTSRV)],  # inconsistent: something serves
    ],
)
def test_rotate_last_serving_refuses_impossible_chains(pairs):
    with pytest.raises(ThreeFSError) as info:
        rotate_last_serving(chain_info(*pairs))
    assert info.value.code == Code.MGMTD_INVALID_TOPOLOGY


# ----------------------------------------------------------------------------- a chain's life


def test_the_life_of_a_chain():
    chain = [ChainTarget(t, PS.SERVING) for t in (1, 2, 3)]
    local = dict.fromkeys((1, 2, 3), LS.UPTODATE)

    def step(expected: str) -> None:
        nonlocal chain
        chain = update_chain_targets(chain, local)
        assert states(chain) == expected

    step("1:SERVING 2:SERVING 3:SERVING")
    local[3] = LS.OFFLINE  # the tail fails
    step("1:SERVING 2:SERVING 3:OFFLINE")
    local[3] = LS.ONLINE  # and comes back: it waits, then syncs, one state per update
    step("1:SERVING 2:SERVING 3:WAITING")
    step("1:SERVING 2:SERVING 3:SYNCING")
    step("1:SERVING 2:SERVING 3:SYNCING")
    local[3] = LS.UPTODATE  # sync done
    step("1:SERVING 2:SERVING 3:SERVING")

    local[3] = LS.OFFLINE  # all fail, one after another
    step("1:SERVING 2:SERVING 3:OFFLINE")
    local[2] = LS.OFFLINE
    step("1:SERVING 2:OFFLINE 3:OFFLINE")
    local[1] = LS.OFFLINE
    step("1:LASTSRV 2:OFFLINE 3:OFFLINE")

    local[2] = local[3] = LS.ONLINE  # the others return first: nothing to sync from
    step("1:LASTSRV 2:WAITING 3:WAITING")
    step("1:LASTSRV 2:WAITING 3:WAITING")
    local[1] = LS.ONLINE  # the last server returns, with the latest data; a sync starts at once
    step("1:SERVING 2:SYNCING 3:WAITING")
    local[1] = LS.UPTODATE  # its storage node sees it SERVING
    step("1:SERVING 2:SYNCING 3:WAITING")
    local[2] = LS.UPTODATE
    step("1:SERVING 2:SERVING 3:SYNCING")
    local[3] = LS.UPTODATE
    step("1:SERVING 2:SERVING 3:SERVING")

    local[1] = LS.OFFLINE  # the head fails: the next one leads, the failed one goes last
    step("2:SERVING 3:SERVING 1:OFFLINE")


# ----------------------------------------------------------------------------- invariants

PROPERTY = settings(max_examples=200, deadline=None)
LIVE = {LS.UPTODATE, LS.ONLINE}


@st.composite
def chains(draw):
    """A random chain (1-5 targets, any states, inconsistent ones included), local states (some
    missing), and a preferred order (a sample of the ids, maybe with an unknown one)."""
    ids = draw(st.lists(st.integers(1, 9), min_size=1, max_size=5, unique=True))
    targets = [ChainTarget(t, draw(st.sampled_from(PS))) for t in ids]
    local = {t: draw(st.sampled_from(LS)) for t in ids if draw(st.integers(0, 5))}
    preferred = draw(st.permutations(ids + [42]))[: draw(st.integers(0, len(ids) + 1))]
    return targets, local, preferred


def count(targets, state):
    return sum(1 for target in targets if target.public_state == state)


@PROPERTY
@given(chains())
def test_invariants_of_one_update(case):
    targets, local, preferred = case
    new = update_chain_targets(targets, local, preferred)
    old_state = {t.target_id: t.public_state for t in targets}
    reported = {t.target_id: local.get(t.target_id, LS.OFFLINE) for t in targets}

    assert sorted(t.target_id for t in new) == sorted(old_state)
    assert count(new, PS.SYNCING) <= 1
    assert count(new, PS.LASTSRV) <= max(1, count(targets, PS.LASTSRV))
    if count(new, PS.SERVING):
        assert count(new, PS.LASTSRV) == 0
    if count(targets, PS.SERVING) or count(targets, PS.LASTSRV):
        assert count(new, PS.SERVING) or count(new, PS.LASTSRV)  # the chain keeps its data
    assert len({reported[t.target_id] for t in new if t.public_state == PS.SERVING}) <= 1
    for target in new:
        tid, state = target.target_id, target.public_state
        if reported[tid] in LIVE:
            assert state in (PS.SERVING, PS.SYNCING, PS.WAITING)
        else:
            assert state in (PS.OFFLINE, PS.LASTSRV)
        if state == PS.SERVING:  # never straight from WAITING or OFFLINE; SYNCING only when done
            assert old_state[tid] in (PS.SERVING, PS.SYNCING, PS.LASTSRV)
            assert old_state[tid] != PS.SYNCING or reported[tid] == LS.UPTODATE
        if state == PS.SYNCING:
            assert old_state[tid] in (PS.SYNCING, PS.WAITING) and reported[tid] == LS.ONLINE
            assert count(new, PS.SERVING)
        if state == PS.LASTSRV:
            assert old_state[tid] in (PS.SERVING, PS.LASTSRV)


@PROPERTY
@given(chains())
def test_the_result_is_ordered(case):
    targets, local, preferred = case
    new = update_chain_targets(targets, local, preferred)
    assert [t.public_state for t in new] == sorted(t.public_state for t in new)
    position = {t.target_id: index for index, t in enumerate(targets)}
    rank = {tid: index for index, tid in enumerate(preferred)}
    serving = [t.target_id for t in new if t.public_state == PS.SERVING]
    named = [tid for tid in serving if tid in rank]
    assert serving[: len(named)] == sorted(named, key=rank.__getitem__)
    for state in PS:
        group = [
            t.target_id
            for t in new
            if t.public_state == state and not (state == PS.SERVING and t.target_id in rank)
        ]
        assert group == sorted(group, key=position.__getitem__)
    assert order_chain(new, preferred) == new


@PROPERTY
@given(chains())
def test_a_fixed_point_within_two_updates(case):
    targets, local, preferred = case
    once = update_chain_targets(targets, local, preferred)
    twice = update_chain_targets(once, local, preferred)
    thrice = update_chain_targets(twice, local, preferred)
    assert thrice == twice
    assert update_chain_targets(thrice, local, preferred) == thrice


@PROPERTY
@given(chains())
def test_the_input_is_not_modified(case):
    targets, local, preferred = case
    before = (list(targets), dict(local), list(preferred))
    update_chain_targets(targets, local, preferred)
    assert (list(targets), dict(local), list(preferred)) == before
