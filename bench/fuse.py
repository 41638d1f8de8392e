"""FUSE benchmark: fio and fs_mark on the threefs mount, next to pyfuse3's own passthrough example
over a local directory and the local disk itself, all measured in this run.

Run from the repository root as root (FUSE): ``.venv/bin/python bench/fuse.py [--size-mib N]``.
Needs fio and fs_mark (Debian packages fio, fsmark; ``scripts/install-system.sh``).

Targets, each a directory:

- ``threefs``: ``threefs mount -f`` (default options: entry/attribute timeouts 0, no writeback
  cache) of a ``LocalCluster`` with 3 storage nodes, 2 targets each, replication 3, 1 MiB chunks,
  storage ``fsync`` off (like the page-cache writes of the other two);
- ``passthrough``: ``examples/passthroughfs.py`` from pyfuse3's source distribution (downloaded
  once into ``build/pyfuse3-sdist`` with ``pip download``), default options, over a local
  directory: what a Python FUSE file system costs with no storage behind it (its readdir made
  linear, which nothing here measures; ``bench/peers/passthrough.py``);
- ``local``: a directory on the local disk (ext4 here; reads come from the page cache, since
  caches cannot be dropped reliably on this machine).

Measurements on each, one fio job, ``psync``, no ``fsync`` unless said: sequential write and read
of one ``--size-mib`` file in 1 MiB blocks; 4 KiB random reads of that file for ``--seconds``;
file creates (``open(O_CREAT)`` + ``close`` of ``--files`` empty files in one directory, a Python
loop) and then ``os.stat`` of each of them; fs_mark with ``fsync`` before close (``-S 1``,
``--files`` files of 4 KiB). Every figure is the best of ``--rounds`` runs. Prints a table with
the ratios of threefs to the other two, then one JSON line (the last line), also written to
``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.peers, threefs

from bench.peers.passthrough import passthrough_mount
from bench.peers.threefs_cluster import threefs_mount as threefs_cluster_mount

TARGETS = ("threefs", "passthrough", "local")
# JSON key -> table label, unit, stem of the ratio keys (``<stem>_ratio_to_passthrough``)
METRICS = {
    "seq_write_mib_s": ("sequential write, 1 MiB", "MiB/s", "seq_write"),
    "seq_read_mib_s": ("sequential read, 1 MiB", "MiB/s", "seq_read"),
    "rand_read_4k_iops": ("random read, 4 KiB", "IOPS", "rand_read_4k"),
    "creates_per_s": ("file creates", "files/s", "creates"),
    "stats_per_s": ("stats", "stats/s", "stats"),
    "fs_mark_fsync_files_per_s": ("fs_mark, 4 KiB + fsync", "files/s", "fs_mark_fsync"),
}


# ----------------------------------------------------------------------------- mounts
# (the mounts themselves live in bench/peers/, shared with bench/compare.py)


@contextmanager
def threefs_mount(directory: Path, options: str) -> Iterator[Path]:
    """A 3-node, replication-3 ``LocalCluster`` under ``directory`` and ``threefs mount`` of it."""
    with threefs_cluster_mount(directory, options) as mount:
        yield mount.mountpoint


@contextmanager
def local_dir(directory: Path) -> Iterator[Path]:
    path = directory / "local"
    path.mkdir(parents=True)
    yield path


# ----------------------------------------------------------------------------- measurements


def fio(directory: Path, name: str, *options: str, jobs: int = 1) -> dict:
    """One fio job in ``directory`` on ``bench.dat``, or ``jobs`` of them, each on its own file
    ``<name>.<n>.0``, reported together; its ``jobs[0]`` JSON record."""
    files = ["--filename=bench.dat", "--numjobs=1"]
    if jobs > 1:
        files = [f"--numjobs={jobs}", "--group_reporting"]
    command = ["fio", f"--name={name}", f"--directory={directory}", *files,
               "--ioengine=psync", "--fallocate=none", "--output-format=json", *options]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"fio {name} failed: {result.stderr[-2000:]}{result.stdout[-2000:]}")
    text = result.stdout
    return json.loads(text[text.index("{") :])["jobs"][0]


def creates_and_stats(directory: Path, files: int) -> tuple[float, float]:
    """(creates/s, stats/s) of ``files`` empty files in a new directory."""
    work = directory / f"creates-{time.monotonic_ns()}"
    work.mkdir()
    paths = [str(work / f"f{index:06d}") for index in range(files)]
    start = time.perf_counter()
    for path in paths:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))
    creates = files / (time.perf_counter() - start)
    start = time.perf_counter()
    for path in paths:
        os.stat(path)
    stats = files / (time.perf_counter() - start)
    return creates, stats


_FS_MARK_ROW = re.compile(r"^\s*\d+\s+\d+\s+\d+\s+([\d.]+)\s+\d+\s*$", re.MULTILINE)


def fs_mark(directory: Path, files: int) -> float:
    """Files/s of fs_mark writing ``files`` 4 KiB files, fsync before each close."""
    # fs_mark refuses directory names of 40 bytes or more: a relative one, run from ``directory``.
    work = f"fs_mark-{time.monotonic_ns() % 10**9}"
    command = ["fs_mark", "-d", work, "-n", str(files), *"-s 4096 -S 1 -t 1 -L 1 -k".split()]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=directory)
    rows = _FS_MARK_ROW.findall(result.stdout)
    if result.returncode != 0 or not rows:
        raise RuntimeError(f"fs_mark failed: {result.stderr[-2000:]}{result.stdout[-2000:]}")
    return float(rows[-1])


def measure(directory: Path, args: argparse.Namespace) -> dict[str, float]:
    """Every metric on one target directory: the best of ``args.rounds`` runs."""
    size = f"--size={args.size_mib}M"
    best: dict[str, float] = {}

    def keep(key: str, value: float) -> None:
        best[key] = max(best.get(key, 0.0), value)

    for round_number in range(args.rounds):
        work = directory / f"round-{round_number}"
        work.mkdir()
        job = fio(work, "seq_write", "--rw=write", "--bs=1M", size)
        keep("seq_write_mib_s", job["write"]["bw_bytes"] / (1 << 20))
        job = fio(work, "seq_read", "--rw=read", "--bs=1M", size)
        keep("seq_read_mib_s", job["read"]["bw_bytes"] / (1 << 20))
        runtime = f"--runtime={args.seconds}"
        job = fio(work, "rand_read", "--rw=randread", "--bs=4k", size, "--time_based", runtime)
        keep("rand_read_4k_iops", job["read"]["iops"])
        creates, stats = creates_and_stats(work, args.files)
        keep("creates_per_s", creates)
        keep("stats_per_s", stats)
        keep("fs_mark_fsync_files_per_s", fs_mark(work, args.files))
    return best


# ----------------------------------------------------------------------------- driver


def _missing_tools() -> list[str]:
    return [tool for tool in ("fio", "fs_mark", "fusermount3") if shutil.which(tool) is None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256, help="size of the fio file, MiB")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of the random-read job")
    parser.add_argument("--files", type=int, default=1000, help="files for creates/stats and fs_mark")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each measurement; the best counts")
    parser.add_argument("--mount-options", default="", help="threefs mount -o options (default: none)")
    parser.add_argument("--out", default="bench/results/fuse.json", help="JSON record path ('' for nowhere)")
    parser.add_argument("--dir", default="", help="where everything lives (default: a temporary directory)")
    args = parser.parse_args(argv)
    missing = _missing_tools()
    if missing:
        print(f"missing: {', '.join(missing)} (run scripts/install-system.sh)", file=sys.stderr)
        return 2
    if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
        print("bench/fuse.py mounts FUSE file systems: run it as root with /dev/fuse", file=sys.stderr)
        return 2

    mounts: dict[str, Callable[[Path], object]] = {
        "threefs": lambda d: threefs_mount(d, args.mount_options),
        "passthrough": passthrough_mount,
        "local": local_dir,
    }
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="threefs-bench-fuse-", dir=args.dir or None) as tmp:
        for target in TARGETS:
            directory = Path(tmp) / target
            directory.mkdir()
            with mounts[target](directory) as path:  # type: ignore[attr-defined]
                figures[target] = measure(path, args)

    record: dict[str, object] = {
        "bench": "fuse",
        "size_mib": args.size_mib,
        "random_read_s": args.seconds,
        "files": args.files,
        "rounds": args.rounds,
        "mount_options": args.mount_options,
        "cpu_count": os.cpu_count(),
    }
    header = f"{'threefs':>10} {'passthrough':>12} {'local':>10} {'/pass':>7} {'/local':>7}"
    print(f"{'benchmark':<26} {'unit':>8} {header}")
    for key, (label, unit, stem) in METRICS.items():
        ours, passthrough, local = (figures[target][key] for target in TARGETS)
        record[key] = round(ours, 1)
        record[f"passthrough_{key}"] = round(passthrough, 1)
        record[f"local_{key}"] = round(local, 1)
        record[f"{stem}_ratio_to_passthrough"] = round(ours / passthrough, 3)
        record[f"{stem}_ratio_to_local"] = round(ours / local, 3)
        print(
            f"{label:<26} {unit:>8} {ours:>10,.0f} {passthrough:>12,.0f} {local:>10,.0f} "
            f"{ours / passthrough:>7.2f} {ours / local:>7.2f}"
        )
    print("(targets: sequential write >= 0.60, sequential read >= 0.90 of passthrough; >= 3,000 creates/s)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
