"""threefs itself, as the benchmarks run it: a ``LocalCluster`` (mgmtd, a meta server and 3 storage
nodes with 2 targets each, replication 3, 1 MiB chunks, storage ``fsync`` off, removed files
collected after 60 s as ``threefs up`` does) under a directory, FUSE-mounted with ``threefs mount
-f`` (default options unless given). Every service listens on 127.0.0.1.

As a script, from the repository root as root::

    .venv/bin/python bench/peers/threefs_cluster.py run [-- COMMAND ...]
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import trio

from bench.peers.common import fuse_mount, run_cli
from threefs.testing.cluster import LocalCluster

GC_DELAY_S = 60.0  # threefs up's default (threefs/local/layout.py); LocalCluster's is 0 for tests


@dataclass(frozen=True)
class ThreefsMount:
    mountpoint: Path
    cluster_config: Path  # for ``threefs.connect(cluster_config)``: the same cluster, as a library


@contextmanager
def threefs_mount(directory: Path, options: str = "") -> Iterator[ThreefsMount]:
    """A 3-node, replication-3 ``LocalCluster`` under ``directory`` and ``threefs mount`` of it on
    ``directory/mnt`` (``options``: ``-o`` of the mount); stopped and unmounted on exit."""
    cluster = LocalCluster(
        directory / "cluster", storage_nodes=3, targets_per_node=2, replication=3, gc_delay_s=GC_DELAY_S
    )
    trio.run(cluster.start)
    try:
        config = directory / "cluster.toml"
        secret = cluster.secret_file
        config.write_text(
            f'mgmtd_addresses = ["{cluster.mgmtd_address}"]\ncluster_secret_file = "{secret}"\n'
        )
        command = [sys.executable, "-m", "client.cli", "mount", str(directory / "mnt"),
                   "--cluster-config", str(config), "-f"]  # fmt: skip
        if options:
            command += ["-o", options]
        with fuse_mount(command, directory / "mnt", directory / "mount.log") as mountpoint:
            yield ThreefsMount(mountpoint, config)
    finally:
        trio.run(cluster.stop)


@contextmanager
def _mountpoint(directory: Path) -> Iterator[Path]:
    with threefs_mount(directory) as mount:
        print(f"cluster config: {mount.cluster_config}", flush=True)
        yield mount.mountpoint


if __name__ == "__main__":
    sys.exit(run_cli(__doc__.splitlines()[0], _mountpoint))
