"""`make run`: the core demo, then a real local cluster used through the client library.

Part 1 is ``threefs.demo`` (authenticated RPC in its own process, concurrent KV transactions).
Part 2 starts one mgmtd and three storage processes on loopback (``LocalCluster``: chains of
three replicas, SERVING), writes a 24 MiB file through ``StorageClient``, reads it back and
checks its sha256, lists the chains as ``threefs admin list-chains`` would, SIGKILLs one storage
node and reads the file again from the surviving replicas, then stops everything. The FUSE mount
joins this demo with the file system API. Exits non-zero if any check fails.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import trio

from client.config import StorageClientConfig
from client.mgmtd import MgmtdClient
from client.routing import RoutingCache
from client.storage import StorageClient
from threefs import demo as core_demo
from threefs.rpc import RpcClient
from threefs.testing.cluster import LocalCluster

FILE_BYTES = 24 << 20
INODE = 1


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"demo: FAILED: {what}")


async def _cluster_demo(data_dir: Path) -> None:
    cluster_dir = data_dir / "cluster"
    shutil.rmtree(cluster_dir, ignore_errors=True)  # a fresh cluster each run
    started = time.perf_counter()
    async with LocalCluster(cluster_dir, storage_nodes=3, replication=3) as cluster:
        print(f"  mgmtd + 3 storage nodes up in {time.perf_counter() - started:.1f} s under {cluster.dir}")
        async with RpcClient(cluster.secret) as rpc:
            mgmtd = MgmtdClient([cluster.mgmtd_address], rpc=rpc)
            routing = RoutingCache(mgmtd)
            await routing.refresh()
            storage = StorageClient(rpc, routing, StorageClientConfig())
            layout = cluster.layout()
            data = os.urandom(FILE_BYTES)
            digest = hashlib.sha256(data).hexdigest()

            started = time.perf_counter()
            await storage.write(INODE, layout, 0, data)
            wrote = time.perf_counter() - started
            started = time.perf_counter()
            back = await storage.read(INODE, layout, 0, FILE_BYTES)
            read = time.perf_counter() - started
            _check(hashlib.sha256(back).hexdigest() == digest, "the file read back differs")
            mib = FILE_BYTES >> 20
            print(
                f"  wrote {mib} MiB ({mib / wrote:.0f} MiB/s, 3 replicas), "
                f"read it back ({mib / read:.0f} MiB/s)"
            )
            print(
                f"  sha256 {digest[:16]}... matches; length from storage: "
                f"{await storage.file_length_hint(INODE, layout)} bytes"
            )
            for chain in await mgmtd.list_chains():
                states = " ".join(f"{t.target_id}:{t.public_state.name}" for t in chain.targets)
                print(f"  chain {chain.chain_id} v{chain.chain_version}: {states}")

            victim = cluster.processes[f"storage-{cluster.storage_node_ids()[1]}"]
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait()
            back = await storage.read(INODE, layout, 0, FILE_BYTES)
            _check(hashlib.sha256(back).hexdigest() == digest, "the file differs after a node died")
            print(f"  SIGKILLed storage node {victim.node_id}: the file still reads back intact")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="threefs demo: core, then a local cluster")
    parser.add_argument("--data-dir", default=".threefs-demo", type=Path)
    args = parser.parse_args(argv)
    code = core_demo.main(["--data-dir", str(args.data_dir)])
    if code:
        return code
    print("cluster: mgmtd and storage processes on loopback, used through client.storage")
    trio.run(_cluster_demo, args.data_dir)
    print("demo: cluster checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
