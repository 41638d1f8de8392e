"""A ``LocalCluster`` for the file system API tests, run on a trio loop in a background thread
so that synchronous tests (and the synchronous ``FileSystem``) can use it; ``cluster.toml``
beside it is what ``threefs.connect`` reads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from client.fs.loop import LoopThread
from threefs.testing.cluster import LocalCluster

CHUNK = 64 << 10  # small chunks: multi-chunk files stay small


@contextmanager
def cluster_in_thread(directory: Path) -> Iterator[tuple[LocalCluster, Path]]:
    """Start a cluster (2 storage nodes x 2 targets, 2 replicas, 64 KiB chunks, one meta
    server) under ``directory``; yields it and its cluster config file; stops it after."""

    def make() -> LocalCluster:
        return LocalCluster(
            directory,
            storage_nodes=2,
            targets_per_node=2,
            replication=2,
            chunk_size=CHUNK,
            meta_config_extra=f"default_chunk_size = {CHUNK}\n",
        )

    loop: LoopThread[LocalCluster] = LoopThread(make, name="test-cluster")
    cluster = loop.start()
    try:
        config = directory / "cluster.toml"
        config.write_text(f'mgmtd_addresses = ["{cluster.mgmtd_address}"]\ncluster_secret_file = "secret"\n')
        yield cluster, config
    finally:
        loop.close()
