"""Faults of a chaos run, from a seeded schedule, one at a time.

Kinds (``KINDS``; ``cut_storage`` only with network namespaces):

- ``kill_storage`` / ``kill_meta`` / ``kill_mgmtd``: SIGKILL the process, wait, start it again
  on the same address. ``kill_mgmtd`` picks the primary every other time.
- ``stop_storage``: SIGSTOP (a hung node: its sockets stay open, nothing answers), then SIGCONT.
  Held past mgmtd's heartbeat timeout about half the time, so its targets are failed and resync.
- ``cut_storage``: take the node's network link down, then up again.
- ``fill_storage``: fill the node's disk (its own tmpfs) past the targets' free-space reserve
  with a filler file, then delete it. Meanwhile its targets refuse new chunks, so writes that
  need one on its chains fail with ENOSPC (never acknowledged); nothing already written may be
  damaged and the chains stay SERVING.

A storage fault touches one node, so at most one replica of any chain (replication 3) is down
at once, well within what the cluster must survive (R-1 = 2). The schedule goes through the
kinds in rounds, each round in a seeded random order, so a short run still has every kind.
After each fault heals, ``wait_recovered`` waits until every chain has all its targets SERVING
and every storage and meta node is ACTIVE again; the time it took is the fault's recovery time.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from client.mgmtd import MgmtdClient
from threefs.errors import ThreeFSError
from threefs.testing.cluster import LocalCluster
from threefs.wire import mgmtd as wire

from .netns import Network

__all__ = ["KINDS", "Fault", "FaultSchedule", "cluster_health", "wait_recovered"]

KINDS = ("kill_storage", "stop_storage", "cut_storage", "fill_storage", "kill_meta", "kill_mgmtd")
FILL_RESERVE_BYTES = 64 << 20  # the storage nodes' min_free_bytes in a chaos run
RECOVERY_TIMEOUT_S = 180.0


@dataclass
class Fault:
    kind: str
    target: str  # the process name
    hold_s: float
    injected_at: float = 0.0  # time.monotonic()
    healed_at: float = 0.0
    recovered_at: float = 0.0  # 0: it did not recover in time

    @property
    def recovery_s(self) -> float:
        """From healing the fault to the cluster being whole again."""
        return self.recovered_at - self.healed_at if self.recovered_at else float("inf")

    @property
    def total_s(self) -> float:
        """From injecting the fault to the cluster being whole again."""
        return self.recovered_at - self.injected_at if self.recovered_at else float("inf")


def cluster_health(routing: wire.RoutingInfo, chain_ids: list[int], node_ids: set[int]) -> list[str]:
    """What is not whole yet ([] when every chain has all targets SERVING and alive, and every
    node of ``node_ids`` is ACTIVE)."""
    problems = []
    for chain_id in chain_ids:
        chain = routing.chains.get(chain_id)
        if chain is None:
            problems.append(f"chain {chain_id} missing")
            continue
        for replica in chain.targets:
            target = routing.targets[replica.target_id]
            if (
                replica.public_state != wire.PublicTargetState.SERVING
                or target.local_state == wire.LocalTargetState.OFFLINE
            ):
                problems.append(
                    f"chain {chain_id} target {replica.target_id} {replica.public_state.name}/"
                    f"{target.local_state.name}"
                )
    for node_id in sorted(node_ids):
        node = routing.nodes.get(node_id)
        if node is None or node.status != wire.NodeStatus.ACTIVE:
            problems.append(f"node {node_id} {'missing' if node is None else node.status.name}")
    return problems


async def wait_recovered(
    mgmtd: MgmtdClient, cluster: LocalCluster, timeout_s: float = RECOVERY_TIMEOUT_S
) -> list[str]:
    """Poll mgmtd until the cluster is whole; returns [] then, or the remaining problems when
    ``timeout_s`` passed."""
    nodes = set(cluster.storage_node_ids()) | set(cluster.meta_node_ids())
    problems = ["no answer from mgmtd yet"]
    deadline = trio.current_time() + timeout_s
    while trio.current_time() < deadline:
        try:
            routing = await mgmtd.get_routing_info(timeout_s=5.0)
        except ThreeFSError as exc:
            problems = [f"mgmtd: {exc}"]
        else:
            if routing is not None:
                problems = cluster_health(routing, cluster.chain_ids, nodes)
                if not problems:
                    return []
        await trio.sleep(0.25)
    return problems


class FaultSchedule:
    """The seeded sequence of faults (see the module docstring)."""

    def __init__(
        self, seed: int, cluster: LocalCluster, network: Network | None, *, disk_fill: bool = False
    ) -> None:
        self.rng = random.Random(f"faults:{seed}")
        self.cluster = cluster
        self.network = network
        self.kinds = [
            k
            for k in KINDS
            if (network is not None or k != "cut_storage") and (disk_fill or k != "fill_storage")
        ]
        self._round: list[str] = []
        self._mgmtd_kills = 0

    def next_kind(self) -> str:
        if not self._round:
            self._round = self.rng.sample(self.kinds, len(self.kinds))
        return self._round.pop()

    async def primary_mgmtd(self) -> str | None:
        """The name of the mgmtd holding the lease (None when none answers as primary)."""
        for name in self.cluster.mgmtd_names():
            process = self.cluster.processes[name]
            if process.process.poll() is not None:
                continue
            try:
                async with MgmtdClient([process.address], self.cluster.secret) as one:
                    answer = await one.call(wire.GET_PRIMARY, wire.GetPrimaryRequest(), timeout_s=2.0)
            except ThreeFSError:
                continue
            if answer.is_primary:
                return name
        return None

    async def plan(self) -> Fault:
        kind = self.next_kind()
        rng = self.rng
        if kind.endswith("_storage"):
            target = f"storage-{rng.choice(self.cluster.storage_node_ids())}"
        elif kind == "kill_meta":
            target = f"meta-{rng.choice(self.cluster.meta_node_ids())}"
        else:
            self._mgmtd_kills += 1
            primary = await self.primary_mgmtd() if self._mgmtd_kills % 2 else None
            target = primary or rng.choice(self.cluster.mgmtd_names())
        hold = (
            rng.uniform(7.0, 10.0) if kind == "stop_storage" and rng.random() < 0.5 else rng.uniform(1.0, 4.0)
        )
        return Fault(kind, target, round(hold, 2))

    async def inject(self, fault: Fault, log: Callable[[str], None]) -> None:
        """Inject ``fault``, hold it, heal it (recording the times)."""
        cluster = self.cluster
        fault.injected_at = time.monotonic()
        log(f"inject {fault.kind} on {fault.target} for {fault.hold_s:.1f} s")
        if fault.kind.startswith("kill_"):
            await cluster.kill(fault.target, signal.SIGKILL)
            await trio.sleep(fault.hold_s)
            fault.healed_at = time.monotonic()
            await cluster.restart(fault.target)
        elif fault.kind == "stop_storage":
            await cluster.kill(fault.target, signal.SIGSTOP)
            await trio.sleep(fault.hold_s)
            fault.healed_at = time.monotonic()
            await cluster.kill(fault.target, signal.SIGCONT)
        elif fault.kind == "fill_storage":
            filler = cluster.dir / fault.target / "chaos-filler"
            await trio.to_thread.run_sync(_fill, filler)
            await trio.sleep(fault.hold_s)
            fault.healed_at = time.monotonic()
            filler.unlink()
        elif fault.kind == "cut_storage":
            assert self.network is not None
            self.network.cut(fault.target)
            await trio.sleep(fault.hold_s)
            fault.healed_at = time.monotonic()
            self.network.restore(fault.target)
        else:
            raise ValueError(f"unknown fault kind {fault.kind}")


def _fill(filler: Path) -> None:
    """Write ``filler`` until its file system has half the reserve left."""
    stats = os.statvfs(filler.parent)
    size = stats.f_bavail * stats.f_frsize - FILL_RESERVE_BYTES // 2
    block = b"\0" * (1 << 20)
    with filler.open("wb") as file:
        while size > 0:
            size -= file.write(block[: min(len(block), size)])
