"""threefs against its peers: the same suite on threefs (3 replicas, FUSE), GlusterFS (3 replicas,
FUSE), pyfuse3's passthrough example and the local disk, in one run, one table and one JSON record.

Run from the repository root as root (FUSE), after ``make install``::

    .venv/bin/python bench/compare.py                          # all four systems, 3 runs each
    .venv/bin/python bench/compare.py --systems threefs,glusterfs --runs 1
    .venv/bin/python bench/compare.py --quick --systems passthrough,local   # smoke test, seconds

GlusterFS 10.3 comes from Debian (``glusterfs-server``, ``glusterfs-client``) and is installed on
first use (``bench/peers/glusterfs.py install``); fio and fs_mark come with ``make install``.
Each system is started under one temporary directory, measured, and stopped and removed before
the next one starts (``bench/peers/``); everything listens on 127.0.0.1 only.

The systems:

- ``threefs``: a ``LocalCluster`` (mgmtd, meta on SQLite, 3 storage nodes x 2 targets, replication
  3, 1 MiB chunks, storage ``fsync`` off) mounted with ``threefs mount -f`` (``--mount-options``,
  default none);
- ``glusterfs``: a replica-3 volume of 3 bricks on the local disk, default volume options, mounted
  with ``mount -t glusterfs`` (default FUSE options: 1 s attribute and entry timeouts);
- ``passthrough``: pyfuse3 3.5.0's ``examples/passthroughfs.py`` over a local directory;
- ``local``: a directory on the local disk.

Measurements, in a fresh directory of each system, each figure the median of ``--runs`` runs (the
listing's 100,000 entries are made once per system, untimed). Before every measurement the
page cache, dentries and inodes are dropped (``sync; echo 3 > /proc/sys/vm/drop_caches``; the
JSON says whether that worked: ``caches_dropped``), so reads come from the storage behind each
system (its disk, or its storage daemons' disk), not from this kernel's cache of the mount. fio
runs ``psync`` with buffered I/O and no fsync:

- ``seq_write_mib_s``, ``seq_read_mib_s``: one ``--size-mib`` file in 1 MiB blocks;
- ``rand_read_4k_iops``, ``rand_write_4k_iops``: 4 KiB random reads, then writes, of that file for
  ``--runtime`` seconds each;
- ``rand_read_4k_8jobs_iops``: 8 fio jobs reading 4 KiB at random, each its own file of
  ``--size-mib``/8 (laid out first, untimed), for ``--runtime`` seconds, IOPS of all 8;
- ``creates_per_s``, ``stats_per_s``, ``unlinks_per_s``: one process, ``--files`` empty files in its
  own directory with ``os.open(O_CREAT|O_EXCL)`` + ``close``, then ``os.stat`` of each (caches
  dropped first), then ``os.unlink`` of each; ``*_8p_per_s``: the same in ``--processes``
  processes at once, each in its own directory with ``--files`` files, the rate of all together
  (from the first start to the last end of each phase);
- ``fs_mark_fsync_files_per_s``: fs_mark writing ``--files`` files of 4 KiB, fsync before close;
- ``listdir_entries_per_s``: ``os.listdir`` of a directory of ``--list-entries`` empty files;
  ``list_stat_entries_per_s``: ``os.scandir`` of it and ``stat`` of every entry (``ls -l``);
  the entries are made untimed the fastest way each system has: for threefs meta ``Mknod``
  calls from the client library (64 at once), for GlusterFS 16 threads through the mount, for
  the passthrough and the local disk straight in the local directory;
- ``native_write_mib_s``, ``native_read_mib_s``: a ``--size-mib`` file written then read in
  ``--native-io-mib`` pieces through each system's own programming interface: for threefs the
  client library (``threefs.connect(cluster.toml)``, ``File.write`` / ``File.readinto``), for
  the others (which have no library of their own in this setup) Python's unbuffered file I/O on
  the mount.

The table has the four systems, threefs/GlusterFS and the issue's targets for that ratio
(sequential write 2x, sequential read 1.5x, 4 KiB random read 1.5x, creates 5x, stats 5x), and
whether the threefs library reads at least as fast as its mount; the JSON record (last line of
the output, also written to ``--out``) has ``systems`` (each system's figures, the same keys for
all), ``ratios``, ``targets``, every run's figures, the parameters and what listened where.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.*, threefs uninstalled

from bench.fuse import fio, fs_mark
from bench.peers import glusterfs as gluster_peer
from bench.peers.common import listeners, loopback_only, pids_mentioning
from bench.peers.passthrough import passthrough_mount, source_dir
from bench.peers.threefs_cluster import threefs_mount

SYSTEMS = ("threefs", "glusterfs", "passthrough", "local")
# JSON key -> (table label, unit); every system reports every key (null when it failed)
METRICS = {
    "seq_write_mib_s": ("fio seq write, 1 MiB", "MiB/s"),
    "seq_read_mib_s": ("fio seq read, 1 MiB", "MiB/s"),
    "rand_read_4k_iops": ("fio rand read, 4 KiB", "IOPS"),
    "rand_write_4k_iops": ("fio rand write, 4 KiB", "IOPS"),
    "rand_read_4k_8jobs_iops": ("fio rand read, 4 KiB, 8 jobs", "IOPS"),
    "creates_per_s": ("creates, 1 process", "files/s"),
    "stats_per_s": ("stats, 1 process", "stats/s"),
    "unlinks_per_s": ("unlinks, 1 process", "files/s"),
    "creates_8p_per_s": ("creates, 8 processes", "files/s"),
    "stats_8p_per_s": ("stats, 8 processes", "stats/s"),
    "unlinks_8p_per_s": ("unlinks, 8 processes", "files/s"),
    "fs_mark_fsync_files_per_s": ("fs_mark 4 KiB + fsync", "files/s"),
    "listdir_entries_per_s": ("listdir (names)", "entries/s"),
    "list_stat_entries_per_s": ("scandir + stat", "entries/s"),
    "native_write_mib_s": ("native write", "MiB/s"),
    "native_read_mib_s": ("native read", "MiB/s"),
}
# threefs / glusterfs ratios the issue asks for
TARGETS = {
    "seq_write_mib_s": 2.0,
    "seq_read_mib_s": 1.5,
    "rand_read_4k_iops": 1.5,
    "creates_per_s": 5.0,
    "stats_per_s": 5.0,
    "creates_8p_per_s": 5.0,
    "stats_8p_per_s": 5.0,
}
NATIVE_TARGET = 1.0  # threefs: library read / mount (fio) sequential read
NATIVE_API = {
    "threefs": "client library: threefs.connect(cluster.toml), File.write / File.readinto",
    "glusterfs": "Python unbuffered file I/O on the FUSE mount",
    "passthrough": "Python unbuffered file I/O on the FUSE mount",
    "local": "Python unbuffered file I/O",
}
DROP_CACHES = Path("/proc/sys/vm/drop_caches")
MIB = 1 << 20


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Caches:
    """``sync; echo 3 > /proc/sys/vm/drop_caches``; remembers whether it ever failed."""

    dropped = True

    @classmethod
    def drop(cls) -> None:
        os.sync()
        try:
            DROP_CACHES.write_text("3\n")
        except OSError:
            cls.dropped = False


# ----------------------------------------------------------------------------- systems


@dataclass
class Target:
    name: str
    root: Path  # where the suite runs: the mount point, or the local directory
    backing: Path | None = None  # the same tree as a local directory (untimed set-up)
    cluster_config: Path | None = None  # threefs: for the client library
    listening: tuple[str, ...] = ()


@contextmanager
def open_target(name: str, directory: Path, args: argparse.Namespace) -> Iterator[Target]:
    if name == "threefs":
        with threefs_mount(directory, args.mount_options) as mount:
            listening = tuple(listeners(pids_mentioning(str(directory))))
            if loopback_only(listening):
                raise RuntimeError(f"threefs listens beyond loopback: {loopback_only(listening)}")
            yield Target(name, mount.mountpoint, cluster_config=mount.cluster_config, listening=listening)
    elif name == "glusterfs":
        gluster_peer.install()
        with gluster_peer.glusterfs_mount(directory) as gluster:
            yield Target(name, gluster.mountpoint, listening=tuple(gluster.listening))
    elif name == "passthrough":
        with passthrough_mount(directory) as mountpoint:
            yield Target(name, mountpoint, backing=source_dir(directory))
    elif name == "local":
        path = directory / "local"
        path.mkdir()
        yield Target(name, path, backing=path)
    else:
        raise ValueError(name)


# ----------------------------------------------------------------------------- measurements


def fio_figures(work: Path, args: argparse.Namespace) -> Iterator[tuple[str, Callable[[], float]]]:
    size = f"--size={args.size_mib}M"
    timed = ("--time_based", f"--runtime={args.runtime}")
    per_job = f"--size={max(args.size_mib // args.processes, 1)}M"

    def seq_write() -> float:
        (work / "bench.dat").unlink(missing_ok=True)
        return fio(work, "seq_write", "--rw=write", "--bs=1M", size)["write"]["bw_bytes"] / MIB

    def seq_read() -> float:
        return fio(work, "seq_read", "--rw=read", "--bs=1M", size)["read"]["bw_bytes"] / MIB

    def rand_read() -> float:
        return fio(work, "rand_read", "--rw=randread", "--bs=4k", size, *timed)["read"]["iops"]

    def rand_write() -> float:
        return fio(work, "rand_write", "--rw=randwrite", "--bs=4k", size, *timed)["write"]["iops"]

    def rand8() -> float:
        fio(work, "rand8", "--rw=randread", "--bs=4k", per_job, "--create_only=1", jobs=args.processes)
        Caches.drop()
        job = fio(work, "rand8", "--rw=randread", "--bs=4k", per_job, *timed, jobs=args.processes)
        return job["read"]["iops"]

    yield "seq_write_mib_s", seq_write
    yield "seq_read_mib_s", seq_read
    yield "rand_read_4k_iops", rand_read
    yield "rand_write_4k_iops", rand_write
    yield "rand_read_4k_8jobs_iops", rand8


def _meta_phases(directory: str, files: int, sync: Callable[[str], None]) -> dict[str, tuple[float, float]]:
    """Create, stat, unlink ``files`` empty files in ``directory``; (start, end) of each phase
    (``time.monotonic``, one clock for every process). ``sync(phase)`` runs before each phase."""
    os.mkdir(directory)
    paths = [os.path.join(directory, f"f{index:06d}") for index in range(files)]
    flags = os.O_CREAT | os.O_WRONLY | os.O_EXCL
    times = {}
    sync("creates")
    start = time.monotonic()
    for path in paths:
        os.close(os.open(path, flags, 0o644))
    times["creates"] = (start, time.monotonic())
    sync("stats")
    start = time.monotonic()
    for path in paths:
        os.stat(path)
    times["stats"] = (start, time.monotonic())
    sync("unlinks")
    start = time.monotonic()
    for path in paths:
        os.unlink(path)
    times["unlinks"] = (start, time.monotonic())
    os.rmdir(directory)
    return times


def _meta_worker(directory: str, files: int, barrier: Any, results: Any) -> None:
    """One of the parallel processes: every phase starts when all processes (and the parent,
    which drops the caches in between) are ready."""

    def sync(phase: str) -> None:
        barrier.wait()  # everybody done with the previous phase
        barrier.wait()  # the parent has dropped the caches

    try:
        results.put(_meta_phases(directory, files, sync))
    except BaseException as error:  # reported, so the parent does not wait forever
        results.put(repr(error))
        barrier.abort()


def meta_rates(work: Path, files: int, processes: int) -> dict[str, float]:
    """creates/stats/unlinks per second with one process (this one) or ``processes``."""
    if processes == 1:
        times = _meta_phases(
            str(work / "meta-1p"), files, lambda phase: Caches.drop() if phase == "stats" else None
        )
        return {phase: files / (end - start) for phase, (start, end) in times.items()}
    context = multiprocessing.get_context("spawn")  # no threads of ours forked mid-flight
    barrier = context.Barrier(processes + 1)
    results = context.Queue()
    workers = []
    for index in range(processes):
        directory = str(work / f"meta-{processes}p-{index}")
        workers.append(context.Process(target=_meta_worker, args=(directory, files, barrier, results)))
    for worker in workers:
        worker.start()
    try:
        for phase in ("creates", "stats", "unlinks"):
            barrier.wait(timeout=600)
            if phase == "stats":
                Caches.drop()
            barrier.wait(timeout=600)
        reports = [results.get(timeout=600) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
                worker.join()
    failures = [report for report in reports if isinstance(report, str)]
    if failures:
        raise RuntimeError(f"meta worker failed: {failures[0]}")
    rates = {}
    for phase in ("creates", "stats", "unlinks"):
        start = min(report[phase][0] for report in reports)
        end = max(report[phase][1] for report in reports)
        rates[phase] = processes * files / (end - start)
    return rates


def native_rates(target: Target, work: Path, args: argparse.Namespace) -> tuple[float, float]:
    """(write, read) MiB/s of one ``--size-mib`` file through the system's own interface."""
    piece = os.urandom(args.native_io_mib * MIB)
    pieces = max(args.size_mib // args.native_io_mib, 1)
    total = pieces * len(piece)
    buffer = bytearray(len(piece))
    path = work / "native.dat"
    if target.cluster_config is not None:
        import threefs

        name = "/" + str(path.relative_to(target.root))
        with threefs.connect(str(target.cluster_config)) as fs:
            start = time.perf_counter()
            with fs.open(name, "wb") as file:
                for _ in range(pieces):
                    file.write(piece)
            write = total / MIB / (time.perf_counter() - start)
            Caches.drop()
            start, done = time.perf_counter(), 0
            with fs.open(name, "rb") as file:
                while count := file.readinto(buffer):
                    done += count
            read = done / MIB / (time.perf_counter() - start)
    else:
        start = time.perf_counter()
        with open(path, "wb", buffering=0) as file:
            for _ in range(pieces):
                file.write(piece)
        write = total / MIB / (time.perf_counter() - start)
        Caches.drop()
        start, done = time.perf_counter(), 0
        with open(path, "rb", buffering=0) as file:
            while count := file.readinto(buffer):
                done += count
        read = done / MIB / (time.perf_counter() - start)
    if done != total:
        raise RuntimeError(f"native read got {done} bytes of {total}")
    path.unlink()
    return write, read


async def _mknod_entries(cluster_config: Path, directory: str, entries: int, width: int = 64) -> None:
    """``entries`` empty files in ``directory`` of threefs: meta Mknod calls, ``width`` at once
    (about 6x faster than open + close from threads)."""
    import trio

    from client.connect import open_filesystem
    from threefs.wire.meta import InodeType

    async with open_filesystem(str(cluster_config)) as fs:
        await fs.mkdir(directory)

        async def create(first: int) -> None:
            for index in range(first, entries, width):
                await fs.meta.mknod(f"{directory}/f{index:07d}", InodeType.FILE, 0o644)

        async with trio.open_nursery() as nursery:
            for first in range(width):
                nursery.start_soon(create, first)


def make_entries(target: Target, entries: int) -> Path:
    """A directory of ``entries`` empty files, made the fastest way the system has (untimed)."""
    name = "listing"
    if target.cluster_config is not None:
        import trio

        trio.run(_mknod_entries, target.cluster_config, "/" + name, entries)
        return target.root / name
    base = target.backing if target.backing is not None else target.root
    (base / name).mkdir()
    threads = 16 if target.backing is None else 1  # a local directory is fastest from one thread

    def create(first: int) -> None:
        for index in range(first, entries, threads):
            os.close(os.open(base / name / f"f{index:07d}", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, range(threads)))
    return target.root / name


def list_rates(directory: Path, entries: int) -> tuple[float, float]:
    Caches.drop()
    start = time.perf_counter()
    names = os.listdir(directory)
    listdir = len(names) / (time.perf_counter() - start)
    Caches.drop()
    start, count = time.perf_counter(), 0
    with os.scandir(directory) as scan:
        for entry in scan:
            entry.stat(follow_symlinks=False)
            count += 1
    list_stat = count / (time.perf_counter() - start)
    if len(names) != entries or count != entries:
        raise RuntimeError(f"listed {len(names)} and {count} entries, made {entries}")
    return listdir, list_stat


def one_run(
    target: Target,
    work: Path,
    listing: Path | None,
    args: argparse.Namespace,
    attempt: Callable[[tuple[str, ...], Callable[[], Any]], None],
) -> None:
    """One run of every measurement in the new directory ``work``."""
    work.mkdir()
    for key, action in fio_figures(work, args):
        attempt((key,), action)
    for processes, suffix in ((1, ""), (args.processes, "_8p")):
        keys = (f"creates{suffix}_per_s", f"stats{suffix}_per_s", f"unlinks{suffix}_per_s")
        attempt(keys, lambda p=processes: tuple(meta_rates(work, args.files, p).values()))
    attempt(("fs_mark_fsync_files_per_s",), lambda: fs_mark(work, args.files))
    if listing is not None:
        keys = ("listdir_entries_per_s", "list_stat_entries_per_s")
        attempt(keys, lambda: list_rates(listing, args.list_entries))
    attempt(("native_write_mib_s", "native_read_mib_s"), lambda: native_rates(target, work, args))
    for leftover in [*work.glob("bench.dat"), *work.glob("rand8.*")]:
        leftover.unlink(missing_ok=True)  # the large files; the small ones go with the system


def measure(target: Target, args: argparse.Namespace, errors: list[str]) -> dict[str, list[float]]:
    """Every metric ``args.runs`` times on one system; failures become ``errors``."""
    runs: dict[str, list[float]] = {key: [] for key in METRICS}

    def attempt(keys: tuple[str, ...], action: Callable[[], Any]) -> None:
        try:
            Caches.drop()
            values = action()
            values = values if isinstance(values, tuple) else (values,)
            for key, value in zip(keys, values, strict=True):
                runs[key].append(float(value))
        except Exception as error:
            errors.append(f"{', '.join(keys)}: {type(error).__name__}: {error}"[:2000])
            log(f"{target.name}: {keys[0]} failed: {error}")
            traceback.print_exc(file=sys.stderr)

    listing: Path | None = None
    start = time.monotonic()
    try:
        listing = make_entries(target, args.list_entries)
        log(f"{target.name}: made {args.list_entries} entries in {time.monotonic() - start:.1f} s")
    except Exception as error:
        errors.append(f"listing set-up: {type(error).__name__}: {error}"[:2000])
        traceback.print_exc(file=sys.stderr)
    for run in range(args.runs):
        log(f"{target.name}: run {run + 1} of {args.runs}")
        one_run(target, target.root / f"run-{run}", listing, args, attempt)
    return runs


# ----------------------------------------------------------------------------- report


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    return round(ours / theirs, 3) if ours and theirs else None


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _yes_no(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "no")


def versions() -> dict[str, str]:
    def first_line(command: list[str]) -> str:
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
        except OSError:
            return "missing"
        return (
            (result.stdout or result.stderr).strip().splitlines()[0] if result.returncode == 0 else "missing"
        )

    return {
        "kernel": platform.release(),
        "python": platform.python_version(),
        "fio": first_line(["fio", "--version"]),
        "glusterfs": first_line(["glusterfs", "--version"]),
        "pyfuse3": first_line([sys.executable, "-c", "import pyfuse3; print(pyfuse3.__version__)"]),
    }


def add_ratios(figures: dict[str, dict[str, float | None]], record: dict[str, Any]) -> None:
    """``ratios`` (threefs / glusterfs for every metric) and ``targets`` into ``record``."""
    ours, theirs = figures.get("threefs", {}), figures.get("glusterfs", {})
    ratios = {key: _ratio(ours.get(key), theirs.get(key)) for key in METRICS}
    targets: dict[str, dict[str, Any]] = {}
    for key, target in TARGETS.items():
        ratio = ratios[key]
        targets[key] = {"target": target, "ratio": ratio, "met": None if ratio is None else ratio >= target}
    native = _ratio(ours.get("native_read_mib_s"), ours.get("seq_read_mib_s"))
    targets["native_read_vs_mount_read"] = {
        "target": NATIVE_TARGET,
        "ratio": native,
        "met": None if native is None else native >= NATIVE_TARGET,
    }
    record["ratios"] = ratios
    record["targets"] = targets


def print_table(figures: dict[str, dict[str, float | None]], record: dict[str, Any]) -> None:
    systems = list(figures)
    ratios, targets = record["ratios"], record["targets"]
    native = targets["native_read_vs_mount_read"]["ratio"]
    columns = "".join(f"{name:>13}" for name in systems)
    print(f"{'metric':<30} {'unit':>9}{columns} {'3fs/gluster':>12} {'target':>7} {'met':>4}")
    for key, (label, unit) in METRICS.items():
        cells = "".join(f"{_fmt(figures[name][key]):>13}" for name in systems)
        goal = f">={TARGETS[key]:g}" if key in TARGETS else ""
        met = _yes_no(targets[key]["met"]) if key in targets else ""
        print(f"{label:<30} {unit:>9}{cells} {_fmt(ratios[key], 2):>12} {goal:>7} {met:>4}")
    met = _yes_no(targets["native_read_vs_mount_read"]["met"])
    padding = " " * (13 * (len(systems) - 1) + 13)
    print(
        f"{'threefs native / mount read':<30} {'ratio':>9}{_fmt(native, 2):>13}{padding} {'>=1':>7} {met:>4}"
    )
    dropped = "dropped before each measurement" if Caches.dropped else "NOT dropped (drop_caches failed)"
    print(f"(median of {record['runs']} run(s); caches {dropped}; {record['duration_s']:.0f} s in all)")


# ----------------------------------------------------------------------------- driver


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help="comma-separated subset of " + ",".join(SYSTEMS)
    )
    parser.add_argument("--runs", type=int, help="runs of every measurement, the median counts (default 3)")
    parser.add_argument("--size-mib", type=int, help="fio and native file size, MiB (default 256)")
    parser.add_argument("--runtime", type=float, help="seconds of each random fio job (default 5)")
    parser.add_argument(
        "--files", type=int, help="files per process for creates/stats/unlinks, fs_mark (1000)"
    )
    parser.add_argument(
        "--processes", type=int, default=8, help="processes / fio jobs of the parallel figures"
    )
    parser.add_argument("--list-entries", type=int, help="entries of the listed directory (default 100000)")
    parser.add_argument(
        "--native-io-mib", type=int, default=4, help="size of each native read and write, MiB"
    )
    parser.add_argument("--mount-options", default="", help="threefs mount -o options (default: none)")
    parser.add_argument("--quick", action="store_true", help="small sizes and 1 run: a smoke test")
    parser.add_argument(
        "--out", default="bench/results/compare.json", help="JSON record path ('' for nowhere)"
    )
    parser.add_argument("--dir", default="", help="parent of the temporary directory (default: /tmp)")
    args = parser.parse_args(argv)
    defaults = {"runs": 3, "size_mib": 256, "runtime": 5.0, "files": 1000, "list_entries": 100_000}
    if args.quick:
        defaults = {"runs": 1, "size_mib": 16, "runtime": 1.0, "files": 50, "list_entries": 1000}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.native_io_mib = min(args.native_io_mib, args.size_mib)
    asked = {name.strip() for name in args.systems.split(",") if name.strip()}
    args.system_list = [name for name in SYSTEMS if name in asked]  # always in the table's order
    unknown = asked - set(SYSTEMS)
    if unknown or not args.system_list:
        parser.error(f"--systems: unknown {', '.join(sorted(unknown))}; choose from {', '.join(SYSTEMS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [tool for tool in ("fio", "fs_mark", "fusermount3", "ss") if shutil.which(tool) is None]
    if missing:
        print(f"missing: {', '.join(missing)} (run make install)", file=sys.stderr)
        return 2
    if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
        print("bench/compare.py mounts FUSE file systems: run it as root with /dev/fuse", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    began = time.monotonic()
    figures: dict[str, dict[str, float | None]] = {}
    every_run: dict[str, dict[str, list[float]]] = {}
    errors: dict[str, list[str]] = {}
    listening: dict[str, list[str]] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="threefs-compare-", dir=args.dir or None) as tmp:
        for name in args.system_list:
            directory = Path(tmp) / name
            directory.mkdir()
            errors[name] = []
            runs: dict[str, list[float]] = {key: [] for key in METRICS}
            start = time.monotonic()
            log(f"{name}: starting")
            try:
                with open_target(name, directory, args) as target:
                    listening[name] = list(target.listening)
                    runs = measure(target, args, errors[name])
            except Exception as error:
                errors[name].append(f"system: {type(error).__name__}: {error}"[:2000])
                log(f"{name}: failed: {error}")
                traceback.print_exc(file=sys.stderr)
            seconds[name] = round(time.monotonic() - start, 1)
            log(f"{name}: done in {seconds[name]:.0f} s")
            every_run[name] = runs
            figures[name] = {key: _median(values) for key, values in runs.items()}

            write_record(make_record(args, figures, every_run, errors, listening, seconds, began), args.out)

    record = make_record(args, figures, every_run, errors, listening, seconds, began, complete=True)
    write_record(record, args.out)
    print_table(figures, record)
    print(json.dumps(record))
    return 1 if record["errors"] else 0


def make_record(
    args: argparse.Namespace,
    figures: dict[str, dict[str, float | None]],
    every_run: dict[str, dict[str, list[float]]],
    errors: dict[str, list[str]],
    listening: dict[str, list[str]],
    seconds: dict[str, float],
    began: float,
    complete: bool = False,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "bench": "compare",
        "complete": complete,  # false in the record written after each system
        "systems": figures,
        "runs": args.runs,
        "size_mib": args.size_mib,
        "runtime_s": args.runtime,
        "files": args.files,
        "processes": args.processes,
        "list_entries": args.list_entries,
        "native_io_mib": args.native_io_mib,
        "mount_options": args.mount_options,
        "quick": args.quick,
        "caches_dropped": Caches.dropped,
        "native_api": {name: NATIVE_API[name] for name in figures},
        "listening": listening,
        "cpu_count": os.cpu_count(),
        "versions": versions(),
        "seconds": seconds,
        "duration_s": round(time.monotonic() - began, 1),
        "every_run": every_run,
        "errors": {name: found for name, found in errors.items() if found},
    }
    add_ratios(figures, record)
    return record


def write_record(record: dict[str, Any], out: str) -> None:
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
