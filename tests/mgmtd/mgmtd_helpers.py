"""Helpers for the mgmtd tests (imported by them; pytest puts this folder on ``sys.path``): a
mgmtd state on the mem KV engine whose wall clock follows trio's clock, so ``mock_clock.jump``
moves heartbeat and lease time without sleeping, and fake nodes that build heartbeats."""

from __future__ import annotations

from collections.abc import Callable

import trio
from trio.testing import MockClock

from mgmtd import ops
from mgmtd.config import MgmtdConfig
from mgmtd.state import MgmtdState
from mgmtd.workers import ChainUpdater, HeartbeatChecker, LeaseKeeper
from threefs.wire.mgmtd import (
    ChainSpec,
    CreateChainsRequest,
    CreateTargetsRequest,
    HeartbeatRequest,
    LocalTargetState,
    NodeType,
    TargetInfo,
    TargetReport,
)

BASE_MS = 1_700_000_000_000  # wall time at trio time 0
CLUSTER = "test-cluster"
SECRET = "mgmtd-test-secret"


def trio_wall_ms(offset_ms: int = 0) -> Callable[[], int]:
    """A wall clock in ms that follows trio's clock (plus ``offset_ms``: a skewed host)."""
    return lambda: BASE_MS + offset_ms + int(trio.current_time() * 1000)


def mgmtd_config(**overrides: object) -> MgmtdConfig:
    settings: dict[str, object] = {
        "cluster_id": CLUSTER,
        "kv_url": "mem://",
        "listen_port": 0,
        "heartbeat_interval_s": 1.0,
        "heartbeat_timeout_s": 3.0,
        "max_clock_skew_s": 5.0,
        "lease_s": 3.0,
        "chain_grace_s": 0.0,
        "updater_interval_s": 0.5,
    }
    settings.update(overrides)
    return MgmtdConfig(**settings)  # type: ignore[arg-type]


class Mgmtd:
    """A mgmtd without RPC: its state and workers, driven by hand."""

    def __init__(self, state: MgmtdState) -> None:
        self.state = state
        self.keeper = LeaseKeeper(state)
        self.checker = HeartbeatChecker(state)
        self.updater = ChainUpdater(state)

    @property
    def routing(self):
        return self.state.require_primary()

    @property
    def version(self) -> int:
        return self.routing.version

    async def advance(self, clock: MockClock, seconds: float) -> None:
        """Move time on by ``seconds`` in steps of at most a lease renewal interval, renewing
        the lease after each step as the lease keeper would."""
        left = seconds
        while left > 1e-9:
            step = min(self.keeper.renew_interval_s, left)
            clock.jump(step)
            left -= step
            await self.keeper.run_once()


class FakeNode:
    """Builds heartbeats of one node with increasing ``seq`` and the current wall time."""

    def __init__(self, node_id: int, node_type: NodeType = NodeType.STORAGE, *, started_ms: int = 0) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.started_ms = started_ms or BASE_MS
        self.seq = 0
        self.targets: dict[int, LocalTargetState] = {}
        self.chain_versions: dict[int, int] = {}  # target id -> chain version it reports

    def heartbeat(self, **overrides: object) -> HeartbeatRequest:
        self.seq += 1
        fields: dict[str, object] = {
            "cluster_id": CLUSTER,
            "node_id": self.node_id,
            "node_type": self.node_type,
            "seq": self.seq,
            "sent_ms": BASE_MS + int(trio.current_time() * 1000),
            "started_ms": self.started_ms,
            "hostname": f"host{self.node_id}",
            "addresses": [f"127.0.0.1:{7000 + self.node_id}"],
            "targets": [
                TargetReport(
                    target_id=tid,
                    local_state=state,
                    chain_version=self.chain_versions.get(tid, 0),
                    used_bytes=tid * 10,
                    capacity_bytes=1000,
                )
                for tid, state in sorted(self.targets.items())
            ],
        }
        fields.update(overrides)
        return HeartbeatRequest(**fields)  # type: ignore[arg-type]

    def restart(self) -> None:
        self.started_ms += 1000
        self.seq = 0


async def make_chain(
    mgmtd: Mgmtd, node_ids: tuple[int, ...] = (1, 2, 3), chain_id: int = 1
) -> dict[int, FakeNode]:
    """Storage nodes ``node_ids``, each with target ``100 + id`` reporting UPTODATE, and chain
    ``chain_id`` over those targets in node order. Returns the fake nodes by id."""
    nodes = {node_id: FakeNode(node_id) for node_id in node_ids}
    targets = [TargetInfo(target_id=100 + node_id, node_id=node_id) for node_id in node_ids]
    await ops.create_targets(mgmtd.state, CreateTargetsRequest(targets=targets))
    spec = ChainSpec(chain_id=chain_id, target_ids=[100 + node_id for node_id in node_ids])
    await ops.create_chains(mgmtd.state, CreateChainsRequest(chains=[spec]))
    for node in nodes.values():
        node.targets = {100 + node.node_id: LocalTargetState.UPTODATE}
    await beat(mgmtd, nodes.values())
    return nodes


async def beat(mgmtd: Mgmtd, nodes) -> None:
    """One heartbeat from each of ``nodes``."""
    for node in nodes:
        await ops.heartbeat(mgmtd.state, node.heartbeat())


def chain_states(mgmtd: Mgmtd, chain_id: int = 1) -> list[tuple[int, str]]:
    """``[(target id, public state name), ...]`` of the chain, head first."""
    return [(t.target_id, t.public_state.name) for t in mgmtd.routing.chains[chain_id].targets]
