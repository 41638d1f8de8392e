"""The chaos runner: a real cluster, a verifying workload, faults from a seeded schedule, and the
checks that nothing acknowledged was lost.

Run from the repository root, as root (FUSE and network namespaces)::

    .venv/bin/python -m tests.chaos.run --duration 1800 --seed 7      # the long run
    .venv/bin/python -m tests.chaos.run --duration 120 --seed 1       # what CI runs

The cluster (``LocalCluster``): 3 mgmtd on one KV engine, 2 meta servers on one KV engine, 5
storage nodes of 2 targets, chains of 3 (3 chains and one spare target), 64 KiB chunks; with
``--netns`` (the default where possible) every process in its own network namespace on one
bridge. The workload (``workload.py``): library writers and readers in this process, writers and
readers through a FUSE mount of the cluster. The faults (``faults.py``): one at a time, each
healed and followed by a wait until the cluster is whole again.

After ``--duration`` the workload stops, the cluster must be whole, and then: every acknowledged
file is read back through the library and through the mount and must match; meta's fsck must
find no problem; every process of the cluster and the FUSE daemon must be running (only killed
processes ever exited, and they were restarted). The runner prints each fault with its recovery
time, then a summary and one JSON line; the exit status is 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import trio

from client.connect import open_filesystem
from client.meta import MetaClient
from client.mgmtd import MgmtdClient
from threefs.rpc import RpcClient
from threefs.testing.cluster import LocalCluster
from threefs.testing.mount import FuseMount, write_cluster_config
from threefs.wire.meta import Caller

from .faults import FILL_RESERVE_BYTES, Fault, FaultSchedule, wait_recovered
from .netns import Network, netns_unavailable
from .workload import (
    CHUNK,
    Ledger,
    fuse_reader,
    fuse_writer,
    library_reader,
    library_writer,
    read_through_mount,
)

__all__ = ["Report", "main", "run_chaos"]

_ROOT = Path(__file__).resolve().parents[2]
MOUNT_TIMEOUT_S = 30.0


@dataclass
class Report:
    seed: int
    duration_s: float
    netns: bool
    faults: list[Fault] = field(default_factory=list)
    files_acked: int = 0
    files_acked_library: int = 0
    files_acked_fuse: int = 0
    bytes_verified: int = 0  # acknowledged bytes read back and matched, each path counted
    files_lost: list[str] = field(default_factory=list)
    bytes_lost: int = 0
    corrupt_reads: list[str] = field(default_factory=list)
    reads_ok: int = 0
    reads_unavailable: int = 0
    write_failures: dict[str, int] = field(default_factory=dict)
    unrecovered: list[str] = field(default_factory=list)
    fsck_problems: list[str] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)
    tracebacks: dict[str, int] = field(default_factory=dict)  # process -> tracebacks in its log

    @property
    def ok(self) -> bool:
        return (
            not (
                self.files_lost
                or self.corrupt_reads
                or self.unrecovered
                or self.fsck_problems
                or self.crashed
            )
            and bool(self.faults)
            and self.files_acked > 0
        )

    def summary(self) -> dict[str, object]:
        recoveries = [f.recovery_s for f in self.faults if f.recovered_at]
        totals = [f.total_s for f in self.faults if f.recovered_at]
        kinds: dict[str, int] = {}
        for fault in self.faults:
            kinds[fault.kind] = kinds.get(fault.kind, 0) + 1
        return {
            "ok": self.ok,
            "seed": self.seed,
            "duration_s": round(self.duration_s, 1),
            "netns": self.netns,
            "faults_injected": len(self.faults),
            "faults_by_kind": kinds,
            "files_acked": self.files_acked,
            "files_acked_library": self.files_acked_library,
            "files_acked_fuse": self.files_acked_fuse,
            "bytes_verified": self.bytes_verified,
            "data_lost_files": len(self.files_lost),
            "data_lost_bytes": self.bytes_lost,
            "corrupt_reads": len(self.corrupt_reads),
            "reads_ok_during_faults": self.reads_ok,
            "reads_unavailable_during_faults": self.reads_unavailable,
            "write_failures_during_faults": sum(self.write_failures.values()),
            "write_failures_by_error": dict(sorted(self.write_failures.items(), key=lambda kv: -kv[1])[:10]),
            "recovery_s_median": round(statistics.median(recoveries), 2) if recoveries else None,
            "recovery_s_max": round(max(recoveries), 2) if recoveries else None,
            "fault_to_recovery_s_max": round(max(totals), 2) if totals else None,
            "unrecovered": self.unrecovered,
            "fsck_problems": self.fsck_problems,
            "crashed": self.crashed,
            "log_tracebacks": self.tracebacks,
        }


# ----------------------------------------------------------------------------- the run


def _process_names(cluster: LocalCluster) -> list[str]:
    return [
        *cluster.mgmtd_names(),
        *(f"storage-{n}" for n in cluster.storage_node_ids()),
        *(f"meta-{n}" for n in cluster.meta_node_ids()),
    ]


STORAGE_TMPFS = "2g"  # each storage node's disk in a run with disk-fill faults


def mount_storage_disks(cluster: LocalCluster) -> None:
    """A tmpfs of ``STORAGE_TMPFS`` as each storage node's data directory (one disk each)."""
    for node_id in cluster.storage_node_ids():
        path = cluster.dir / f"storage-{node_id}"
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={STORAGE_TMPFS}", "tmpfs", str(path)], check=True
        )


def unmount_storage_disks(cluster: LocalCluster) -> None:
    for node_id in cluster.storage_node_ids():
        path = cluster.dir / f"storage-{node_id}"
        if os.path.ismount(path):
            subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def make_cluster(directory: Path, network: Network | None) -> LocalCluster:
    cluster = LocalCluster(
        directory / "cluster",
        mgmtd_count=3,
        storage_nodes=5,
        targets_per_node=2,
        replication=3,
        meta_servers=2,
        chunk_size=CHUNK,
        meta_config_extra=f"default_chunk_size = {CHUNK}\n",
        gc_delay_s=3600.0,
        start_timeout_s=120.0,
        storage_config_extra=f"min_free_bytes = {FILL_RESERVE_BYTES}\nmin_free_ratio = 0.0\n",
        host_of=network.host_of if network is not None else None,
        wrap_command=network.wrap if network is not None else None,
    )
    if network is not None:
        network.setup(_process_names(cluster))
    return cluster


async def run_chaos(
    directory: Path,
    *,
    duration_s: float,
    seed: int,
    use_netns: bool,
    disk_fill: bool = True,
    min_faults: int = 0,
    log: Callable[[str], None] = print,
) -> Report:
    """One chaos run in ``directory`` (see the module docstring): faults for ``duration_s``, and
    at least ``min_faults`` of them. Always stops what it started."""
    report = Report(seed=seed, duration_s=duration_s, netns=use_netns)
    network = Network() if use_netns else None
    cluster = make_cluster(directory, network)
    mount = FuseMount(cluster, directory / "cluster.toml", str(directory / "mnt"))
    try:
        if disk_fill:
            mount_storage_disks(cluster)
        started = time.monotonic()
        await cluster.start()
        log(f"cluster up in {time.monotonic() - started:.1f} s: {len(cluster.chain_ids)} chains")
        write_cluster_config(cluster, mount.config_file)
        await trio.to_thread.run_sync(mount.mount)
        schedule = FaultSchedule(seed, cluster, network, disk_fill=disk_fill)
        await _run(cluster, schedule, mount, report, duration_s, min_faults, log)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(mount.unmount)
            await cluster.stop()
            unmount_storage_disks(cluster)
            if network is not None:
                network.teardown()
    return report


async def _run(
    cluster: LocalCluster,
    schedule: FaultSchedule,
    mount: FuseMount,
    report: Report,
    duration_s: float,
    min_faults: int,
    log: Callable[[str], None],
) -> None:
    ledger = Ledger(report.seed)
    mnt = mount.path
    async with (
        MgmtdClient(cluster.mgmtd_addresses, cluster.secret) as mgmtd,
        open_filesystem(mount.config_file, admin=True) as fs,
    ):
        stop, thread_stop = trio.Event(), threading.Event()
        threads = [
            threading.Thread(target=fuse_writer, args=(mnt, ledger, 0, thread_stop), daemon=True),
            threading.Thread(target=fuse_reader, args=(mnt, ledger, 0, thread_stop), daemon=True),
        ]
        for thread in threads:
            thread.start()
        async with trio.open_nursery() as nursery:
            for index in range(2):
                nursery.start_soon(library_writer, fs, ledger, index, stop)
            nursery.start_soon(library_reader, fs, ledger, 0, stop)
            deadline = time.monotonic() + duration_s
            await trio.sleep(2.0)  # some acknowledged files before the first fault
            while time.monotonic() < deadline or len(report.faults) < min_faults:
                fault = await schedule.plan()
                report.faults.append(fault)
                await schedule.inject(fault, log)
                problems = await wait_recovered(mgmtd, cluster)
                if problems:
                    report.unrecovered.append(f"{fault.kind} on {fault.target}: {'; '.join(problems[:5])}")
                    log(f"  NOT recovered: {problems[:5]}")
                    break
                fault.recovered_at = time.monotonic()
                log(f"  recovered {fault.recovery_s:.1f} s after healing ({len(ledger.acks)} files acked)")
                await trio.sleep(schedule.rng.uniform(0.5, 2.0))
            stop.set()
        thread_stop.set()
        for thread in threads:
            await trio.to_thread.run_sync(thread.join, 180.0)
            if thread.is_alive():
                report.crashed.append(f"a FUSE workload thread hung ({thread.name})")
        report.reads_ok, report.reads_unavailable = ledger.reads_ok, ledger.reads_unavailable
        report.write_failures = dict(ledger.write_failures)
        report.corrupt_reads = list(ledger.corrupt)
        problems = await wait_recovered(mgmtd, cluster)
        if problems:
            report.unrecovered.append(f"after the run: {'; '.join(problems[:5])}")
        await _verify(fs, mnt, ledger, report, log)
    await _fsck(cluster, report)
    for name, process in cluster.processes.items():
        if process.process.poll() is not None:
            report.crashed.append(f"{name} exited with {process.process.returncode}")
        count = process.log_path.read_bytes().count(b"Traceback (most recent call last)")
        if count:
            report.tracebacks[name] = count
    count = (
        mount.log_path.read_bytes().count(b"Traceback (most recent call last)")
        if mount.log_path.exists()
        else 0
    )
    if count:
        report.tracebacks["fuse"] = count
    if not mount.alive():
        report.crashed.append("the FUSE daemon exited")


async def _verify(fs, mnt: str, ledger: Ledger, report: Report, log: Callable[[str], None]) -> None:  # type: ignore[no-untyped-def]
    acks = list(ledger.acks.values())
    report.files_acked = len(acks)
    report.files_acked_library = sum(1 for a in acks if a.via == "library")
    report.files_acked_fuse = len(acks) - report.files_acked_library
    log(f"verifying {len(acks)} acknowledged files through the library and the mount")
    for ack in acks:
        for where in ("library", "mount"):
            try:
                if where == "library":
                    data = await fs.read_bytes(ack.name)
                else:
                    data = await trio.to_thread.run_sync(read_through_mount, mnt, ack.name)
            except OSError as exc:
                report.files_lost.append(f"{ack.name} ({where}: {exc})")
                report.bytes_lost += ack.size
                continue
            before = len(ledger.corrupt)
            ledger.checked(ack, data, f"final {where} read")
            if len(ledger.corrupt) > before:
                report.files_lost.append(f"{ack.name} ({where}: wrong bytes)")
                report.bytes_lost += ack.size
            else:
                report.bytes_verified += ack.size


async def _fsck(cluster: LocalCluster, report: Report) -> None:
    async with RpcClient(cluster.secret) as rpc:
        meta = MetaClient(rpc, addresses=cluster.meta_addresses, caller=Caller(uid=0, gid=0, admin=True))
        result = await meta.fsck()
    report.fsck_problems = [f"{p.kind} inode {p.inode} parent {p.parent} {p.name!r}" for p in result.problems]


def print_report(report: Report) -> None:
    print(f"\n{'fault':<14} {'target':<13} {'held s':>7} {'recovery s':>11} {'total s':>8}")
    for fault in report.faults:
        recovery = f"{fault.recovery_s:.1f}" if fault.recovered_at else "never"
        total = f"{fault.total_s:.1f}" if fault.recovered_at else "-"
        print(f"{fault.kind:<14} {fault.target:<13} {fault.hold_s:>7.1f} {recovery:>11} {total:>8}")
    summary = report.summary()
    print()
    for key in (
        "faults_injected", "files_acked", "bytes_verified", "data_lost_files", "data_lost_bytes",
        "corrupt_reads", "reads_unavailable_during_faults", "write_failures_during_faults",
        "recovery_s_median", "recovery_s_max", "fault_to_recovery_s_max",
    ):  # fmt: skip
        print(f"{key:<34} {summary[key]}")
    for key in ("unrecovered", "fsck_problems", "crashed", "log_tracebacks"):
        if summary[key]:
            print(f"{key}: {summary[key]}")
    if report.files_lost:
        print("lost:", report.files_lost[:20])
    print("RESULT:", "PASS" if report.ok else "FAIL")
    print(json.dumps({**summary, "faults": [asdict(f) for f in report.faults]}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of faults (default 120)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-faults", type=int, default=0, help="inject at least this many")
    parser.add_argument("--disk-fill", action=argparse.BooleanOptionalAction, default=True,
                        help="storage nodes on tmpfs disks, and disk-fill faults (default: on)")  # fmt: skip
    parser.add_argument("--netns", action=argparse.BooleanOptionalAction, default=None,
                        help="a network namespace per process (default: when possible)")  # fmt: skip
    parser.add_argument("--dir", help="work directory (default: a temporary one, removed after)")
    args = parser.parse_args(argv)
    use_netns = netns_unavailable() is None if args.netns is None else args.netns
    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="threefs-chaos-"))
    report = trio.run(
        lambda: run_chaos(
            directory,
            duration_s=args.duration,
            seed=args.seed,
            use_netns=use_netns,
            min_faults=args.min_faults,
        )
    )
    print_report(report)
    if report.ok and not args.dir:
        shutil.rmtree(directory, ignore_errors=True)
    elif not report.ok:
        print(f"logs kept in {directory}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
