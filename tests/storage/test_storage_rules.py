"""The storage service's pure parts: chain roles, local-state rules, version rules, remembered
answers and chunk locks."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from storage.components.chain_position import locate
from storage.components.chunk_locks import ChunkLocks
from storage.components.dedup import RequestDedup
from storage.components.local_state import next_local_state
from storage.components.update_rules import HopAction, plan_head, plan_hop
from storage.store.interface import ChunkId, ChunkMeta, ChunkState
from threefs.wire.mgmtd import ChainInfo, ChainTarget, LocalTargetState, RoutingInfo, TargetInfo
from threefs.wire.mgmtd import PublicTargetState as P
from threefs.wire.storage import RequestTag, UpdateType

UPTODATE, ONLINE, OFFLINE = LocalTargetState.UPTODATE, LocalTargetState.ONLINE, LocalTargetState.OFFLINE


def chain(*replicas: tuple[int, P], version: int = 2) -> ChainInfo:
    return ChainInfo(chain_id=1, chain_version=version, targets=[ChainTarget(t, s) for t, s in replicas])


def routing(chain_info: ChainInfo, local: dict[int, LocalTargetState]) -> RoutingInfo:
    targets = {
        t.target_id: TargetInfo(
            target_id=t.target_id,
            node_id=t.target_id,
            chain_id=1,
            public_state=t.public_state,
            local_state=local.get(t.target_id, ONLINE),
        )
        for t in chain_info.targets
    }
    return RoutingInfo(version=10, cluster_id="c", chains={1: chain_info}, targets=targets)


def test_chain_roles():
    info = chain((1, P.SERVING), (2, P.SERVING), (3, P.SYNCING), (4, P.WAITING), (5, P.OFFLINE))
    head, middle, syncing, waiting = (locate(info, {t}) for t in (1, 2, 3, 4))
    assert head.is_head and not middle.is_head and not syncing.is_head
    assert head.successor.target_id == 2 and middle.successor.target_id == 3 and syncing.successor is None
    assert (head.predecessor_id, middle.predecessor_id, syncing.predecessor_id) == (0, 1, 2)
    assert head.read_tail_id == 2  # the last SERVING, not the SYNCING one
    assert syncing.receives_updates and not waiting.receives_updates
    assert locate(info, {9}) is None


@pytest.mark.parametrize(
    ("public", "current", "recorded", "others", "version", "promote", "expected"),
    [
        (P.SERVING, UPTODATE, UPTODATE, UPTODATE, 5, False, UPTODATE),  # stays
        (P.SERVING, ONLINE, ONLINE, ONLINE, 5, True, UPTODATE),  # whole-chain restart
        (P.SERVING, ONLINE, ONLINE, UPTODATE, 5, True, ONLINE),  # restarted next to a current one
        (P.SERVING, ONLINE, ONLINE, UPTODATE, 1, True, UPTODATE),  # a chain that never changed
        (P.SERVING, ONLINE, UPTODATE, ONLINE, 5, True, ONLINE),  # mgmtd has not seen the restart
        (P.SERVING, ONLINE, ONLINE, ONLINE, 5, False, ONLINE),  # no promotion outside heartbeats
        (P.WAITING, UPTODATE, UPTODATE, UPTODATE, 5, True, ONLINE),
        (P.LASTSRV, UPTODATE, UPTODATE, OFFLINE, 5, True, ONLINE),
        (P.OFFLINE, UPTODATE, OFFLINE, UPTODATE, 5, True, ONLINE),
        (P.SYNCING, ONLINE, ONLINE, UPTODATE, 5, True, ONLINE),
    ],
)
def test_local_state_rules(public, current, recorded, others, version, promote, expected):
    info = chain((2, P.SERVING), (1, public), version=version)
    view = routing(info, {1: recorded, 2: others})
    assert next_local_state(current, 1, view, promote=promote) == expected


def test_a_sync_claim_holds_only_at_its_chain_version():
    view = routing(chain((2, P.SERVING), (1, P.SYNCING), version=7), {2: UPTODATE})
    assert next_local_state(ONLINE, 1, view, synced_version=7) == UPTODATE
    assert next_local_state(UPTODATE, 1, view, synced_version=6) == ONLINE
    assert next_local_state(UPTODATE, 1, view, failed=True, synced_version=7) == OFFLINE
    assert next_local_state(UPTODATE, 9, view) == ONLINE  # in no chain
    assert next_local_state(UPTODATE, 1, None) == UPTODATE  # no routing yet: unchanged


def meta(commit: int, update: int | None = None, *, length: int = 10, crc: int = 5, chain_version: int = 3):
    update = commit if update is None else update
    return ChunkMeta(
        chunk_id=ChunkId(1, 0),
        chunk_size=1 << 16,
        chain_version=chain_version,
        update_version=update,
        commit_version=commit,
        length=length,
        crc32c=crc,
        state=ChunkState.DIRTY if update > commit else ChunkState.COMMITTED,
    )


def test_head_versions():
    assert plan_head(None, UpdateType.WRITE) == (1, False)
    assert plan_head(meta(4), UpdateType.WRITE) == (5, False)
    assert plan_head(meta(4, 5), UpdateType.WRITE) == (6, True)  # a leftover: go whole, past it
    assert plan_head(meta(4, 5), UpdateType.REMOVE) == (6, False)


def test_hop_versions():
    write, replace = UpdateType.WRITE, UpdateType.REPLACE
    assert plan_hop(None, write, 1, 3, 1, 1) == HopAction.APPLY
    assert plan_hop(None, write, 2, 3, 1, 1) == HopAction.STALE  # missing history: send it whole
    assert plan_hop(meta(4, 5), write, 5, 3, 1, 1) == HopAction.APPLY  # a retried forward
    assert plan_hop(meta(5), write, 5, 3, 1, 1) == HopAction.REPLAY
    assert plan_hop(meta(7), write, 5, 3, 1, 1) == HopAction.STALE
    assert plan_hop(None, replace, 9, 3, 10, 5) == HopAction.APPLY
    assert plan_hop(meta(5), replace, 5, 3, 10, 5) == HopAction.REPLAY
    assert plan_hop(meta(5), replace, 5, 3, 10, 6) == HopAction.FORCE  # that version, as it should be
    assert plan_hop(meta(9), replace, 5, 4, 10, 5) == HopAction.FORCE  # diverged under an older chain
    assert plan_hop(meta(9), replace, 5, 3, 10, 5) == HopAction.STALE  # a delayed duplicate
    assert plan_hop(meta(9), UpdateType.REMOVE, 5, 3, 0, 0) == HopAction.APPLY


async def test_dedup_remembers_answers_and_joins_running_duplicates():
    dedup = RequestDedup(seqs_per_channel=2, max_channels=2)
    calls = []

    async def run(answer: str) -> str:
        calls.append(answer)
        await trio.sleep(0.01)
        return answer

    tag = RequestTag(client_id=b"c" * 16, channel=1, seq=1)
    results = []
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(lambda: _collect(results, dedup.run("U", tag, lambda: run("first"))))
    assert results == ["first"] * 3 and calls == ["first"]
    for seq in (2, 3):
        await dedup.run("U", RequestTag(client_id=b"c" * 16, channel=1, seq=seq), lambda: run("x"))
    assert dedup.lookup("U", tag) is None  # only the last 2 seqs of a channel are kept
    assert await dedup.run("U", tag, lambda: run("again")) == "again"

    async def fail() -> str:
        raise RuntimeError("boom")

    failing = RequestTag(client_id=b"d" * 16, channel=0, seq=1)
    with pytest.raises(RuntimeError):
        await dedup.run("U", failing, fail)
    assert await dedup.run("U", failing, lambda: run("retried")) == "retried"  # errors are not kept
    await dedup.run("U", RequestTag(client_id=b"e" * 16, channel=0, seq=1), lambda: run("third channel"))
    assert dedup.lookup("U", RequestTag(client_id=b"c" * 16, channel=1, seq=1)) is None  # evicted channel


async def _collect(results: list, call) -> None:
    results.append(await call)


async def test_chunk_locks_serialize_and_clean_up():
    waited = []
    locks = ChunkLocks(on_wait=waited.append)
    order = []

    async def user(name: str, delay: float) -> None:
        await trio.sleep(delay)
        async with locks.hold(1, ChunkId(1, 0)):
            order.append(f"{name}+")
            await trio.sleep(0.01)
            order.append(f"{name}-")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(user, "a", 0)
        nursery.start_soon(user, "b", 0.001)
    assert order == ["a+", "a-", "b+", "b-"]
    assert len(waited) == 1 and locks.waits == 1
    assert len(locks) == 0  # nothing kept for unused chunks

    async with locks.hold_many(1, [ChunkId(1, 2), ChunkId(1, 1), ChunkId(1, 2)]):
        assert locks.locked(1, ChunkId(1, 1)) and locks.locked(1, ChunkId(1, 2))
    assert len(locks) == 0

    with trio.move_on_after(0.01):  # cancelled while waiting: nothing left behind
        async with locks.hold(1, ChunkId(1, 0)):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(user, "c", 0)
                await trio.sleep(1)
    assert len(locks) == 0
