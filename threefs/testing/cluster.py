"""A whole threefs cluster on this machine for tests and benchmarks: one mgmtd process, N
storage processes and M meta servers on loopback under one directory, with targets, balanced
chains and chain table 1 set up and SERVING.

Usage (trio)::

    async with LocalCluster(tmp_dir, storage_nodes=3, targets_per_node=2, replication=3) as cluster:
        cluster.mgmtd_address, cluster.secret, cluster.layout(stripe_size=4)

Each process is ``sys.executable -m mgmtd.main`` / ``-m storage.main`` / ``-m meta.main`` with a
TOML config written here; its stdout goes to ``<name>.out`` (where the ``listening`` line is
awaited) and its log to ``<name>.log``. Node ids: mgmtd 1, storage nodes 11, 12, ...; node ``n``
holds targets ``n*100 + 1 .. n*100 + targets_per_node``; meta servers 1001, 1002, ..., started
once the chains are SERVING, all on one KV engine (``meta_kv_url``, default a sqlite file
``<dir>/meta/meta.db``) and registered ACTIVE at mgmtd when ``start()`` returns. ``stop()``
sends SIGTERM, then SIGKILL to a process still alive after ``stop_timeout_s``; a failed
``start()`` stops what it started and raises ``ClusterError`` with the tail of the failing
process's log. Processes are started with plain ``subprocess`` so a launcher (``threefs up``)
may leave them running.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import trio

import threefs
from threefs.layout import Layout
from threefs.local import bootstrap, configs
from threefs.local.configs import MGMTD_NODE_ID, TABLE_ID
from threefs.rpc import RpcClient, RpcClientConfig

__all__ = ["ClusterError", "LocalCluster", "NodeProcess"]

_LOG_TAIL_BYTES = 3000
_TIMING = configs.Timing()  # short periods: tests see failures and recoveries quickly


class ClusterError(RuntimeError):
    """The cluster could not be started (the message carries the relevant log's tail)."""


@dataclass
class NodeProcess:
    """One started process: ``name`` (``mgmtd`` / ``storage-11``), its node id, config, output
    files and, once it listens, its address."""

    name: str
    node_id: int
    config_path: Path
    out_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    address: str = ""

    def log_tail(self) -> str:
        try:
            data = self.log_path.read_bytes()[-_LOG_TAIL_BYTES:]
        except OSError:
            return "(no log)"
        return data.decode(errors="replace")


class LocalCluster:
    """See the module docstring. ``fsync`` goes into every storage config (off: a benchmark's
    disk figure then compares with plain writes). ``storage_config_extra`` /
    ``mgmtd_config_extra`` / ``meta_config_extra``: more TOML lines for the configs (keys not
    already set here). ``meta_servers`` (0: none), ``meta_kv_url``, ``gc_delay_s`` and
    ``session_prune_interval_s`` configure the meta servers. ``mgmtd_count`` mgmtds (node ids
    1, 2, ...; processes ``mgmtd``, ``mgmtd-2``, ...) share one KV engine; one is primary.
    ``host_of(name)`` is the address a process listens on (default 127.0.0.1) and
    ``wrap_command(name, argv)`` the command line that runs it (e.g. inside a network
    namespace). ``kill`` and ``restart`` are for fault injection: a restarted process listens on
    the port it had."""

    def __init__(
        self,
        tmp_dir: str | Path,
        *,
        storage_nodes: int = 3,
        targets_per_node: int = 1,
        replication: int = 3,
        chunk_size: int = 1 << 20,
        fsync: bool = False,
        secret: str = "local-cluster-secret",
        cluster_id: str = "local",
        start_timeout_s: float = 60.0,
        stop_timeout_s: float = 10.0,
        storage_config_extra: str = "",
        mgmtd_config_extra: str = "",
        meta_servers: int = 1,
        meta_kv_url: str = "",
        gc_delay_s: float = 0.0,
        session_prune_interval_s: float = 1.0,
        meta_config_extra: str = "",
        mgmtd_count: int = 1,
        host_of: Callable[[str], str] | None = None,
        wrap_command: Callable[[str, list[str]], list[str]] | None = None,
    ) -> None:
        if storage_nodes < 1 or targets_per_node < 1 or not 1 <= replication <= storage_nodes:
            raise ValueError(
                f"need 1 <= replication ({replication}) <= storage_nodes ({storage_nodes}) "
                f"and targets_per_node >= 1 ({targets_per_node})"
            )
        self.dir = Path(tmp_dir).absolute()
        self.storage_nodes = storage_nodes
        self.targets_per_node = targets_per_node
        self.replication = replication
        self.chunk_size = chunk_size
        self.fsync = fsync
        self.secret = secret
        self.cluster_id = cluster_id
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.storage_config_extra = storage_config_extra
        self.mgmtd_config_extra = mgmtd_config_extra
        if meta_servers < 0:
            raise ValueError(f"meta_servers must be >= 0, not {meta_servers}")
        if mgmtd_count < 1:
            raise ValueError(f"mgmtd_count must be >= 1, not {mgmtd_count}")
        self.mgmtd_count = mgmtd_count
        self._host_of = host_of or (lambda name: "127.0.0.1")
        self._wrap_command = wrap_command or (lambda name, argv: argv)
        self.meta_servers = meta_servers
        self.meta_kv_url = meta_kv_url or f"sqlite:///{self.dir}/meta/meta.db"
        self.gc_delay_s = gc_delay_s
        self.session_prune_interval_s = session_prune_interval_s
        self.meta_config_extra = meta_config_extra
        self.processes: dict[str, NodeProcess] = {}
        self.chain_ids: list[int] = []
        self.table_version = 0
        self._root = Path(threefs.__file__).resolve().parent.parent

    # ------------------------------------------------------------------ public view

    @property
    def mgmtd_address(self) -> str:
        """The first mgmtd's address."""
        return self.processes["mgmtd"].address

    @property
    def mgmtd_addresses(self) -> list[str]:
        """Every mgmtd's address, in node id order."""
        return [self.processes[name].address for name in self.mgmtd_names()]

    def mgmtd_names(self) -> list[str]:
        return ["mgmtd", *(f"mgmtd-{n}" for n in range(MGMTD_NODE_ID + 1, MGMTD_NODE_ID + self.mgmtd_count))]

    @property
    def storage_addresses(self) -> dict[int, str]:
        return {p.node_id: p.address for p in self.processes.values() if p.name.startswith("storage-")}

    @property
    def meta_addresses(self) -> list[str]:
        """The meta servers' addresses, in node id order."""
        return [self.processes[f"meta-{n}"].address for n in self.meta_node_ids()]

    @property
    def secret_file(self) -> Path:
        return self.dir / "secret"

    def storage_node_ids(self) -> list[int]:
        return configs.storage_node_ids(self.storage_nodes)

    def meta_node_ids(self) -> list[int]:
        return configs.meta_node_ids(self.meta_servers)

    def target_ids(self, node_id: int) -> list[int]:
        return configs.target_ids(node_id, self.targets_per_node)

    def layout(self, *, stripe_size: int | None = None, base_index: int = 0, seed: int = 0) -> Layout:
        """A file layout over chain table 1 as created (default stripe: every chain)."""
        return Layout(
            table_id=TABLE_ID,
            table_version=self.table_version,
            chunk_size=self.chunk_size,
            stripe_size=stripe_size or len(self.chain_ids),
            base_index=base_index,
            seed=seed,
        )

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> LocalCluster:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with trio.CancelScope(shield=True):
            await self.stop()

    async def start(self) -> None:
        """Start everything and return once every chain of table 1 is SERVING."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.secret_file.write_text(self.secret + "\n")
        try:
            with trio.fail_after(self.start_timeout_s):
                await self._start()
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                await self.stop()
            if isinstance(exc, trio.TooSlowError):
                raise ClusterError(f"the cluster did not start within {self.start_timeout_s} s") from exc
            raise

    async def _start(self) -> None:
        mgmtds = [
            self._spawn(name, MGMTD_NODE_ID + i, "mgmtd.main", self._mgmtd_config(MGMTD_NODE_ID + i, name))
            for i, name in enumerate(self.mgmtd_names())
        ]
        for mgmtd in mgmtds:
            await self._wait_listening(mgmtd)
        address = self.mgmtd_address
        async with RpcClient(self.secret, RpcClientConfig(connect_timeout_s=2.0)) as rpc:
            address = await self._wait_primary(rpc)
            targets = {n: self.target_ids(n) for n in self.storage_node_ids()}
            await bootstrap.create_missing_targets(rpc, address, targets)
            nodes = [
                self._spawn(f"storage-{n}", n, "storage.main", self._storage_config(n))
                for n in self.storage_node_ids()
            ]
            for node in nodes:
                await self._wait_listening(node)
            await bootstrap.wait_registered(rpc, address, set(self.storage_node_ids()), self._check_alive)
            self.chain_ids, self.table_version = await bootstrap.ensure_chain_table(
                rpc, address, TABLE_ID, self.replication
            )
            await bootstrap.wait_serving(rpc, address, self.chain_ids, self._check_alive)
            if self.meta_servers:
                (self.dir / "meta").mkdir(exist_ok=True)
                metas = [
                    self._spawn(f"meta-{n}", n, "meta.main", self._meta_config(n))
                    for n in self.meta_node_ids()
                ]
                for node in metas:
                    await self._wait_listening(node)
                await bootstrap.wait_registered(rpc, address, set(self.meta_node_ids()), self._check_alive)

    async def stop(self) -> None:
        """SIGTERM every process (storage first), then SIGKILL those still alive after
        ``stop_timeout_s``; idempotent."""
        alive = [p for p in reversed(list(self.processes.values())) if p.process.poll() is None]
        for node in alive:
            node.process.send_signal(signal.SIGTERM)
        deadline = trio.current_time() + self.stop_timeout_s
        for node in alive:
            try:
                remaining = max(deadline - trio.current_time(), 0.0)
                await trio.to_thread.run_sync(node.process.wait, remaining)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()

    # ------------------------------------------------------------------ configs and processes

    async def _wait_primary(self, rpc: RpcClient) -> str:
        """The address of whichever mgmtd holds the primary lease, once one does."""
        with trio.move_on_after(1.0 if self.mgmtd_count > 1 else math.inf):
            await bootstrap.wait_primary(rpc, self.mgmtd_address, self._check_alive)
            return self.mgmtd_address
        while True:
            for address in self.mgmtd_addresses:
                with trio.move_on_after(0.5):
                    await bootstrap.wait_primary(rpc, address, self._check_alive)
                    return address

    async def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to process ``name`` and, for SIGKILL/SIGTERM, wait until it is gone."""
        node = self.processes[name]
        node.process.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            await trio.to_thread.run_sync(node.process.wait)

    async def restart(self, name: str) -> NodeProcess:
        """Start process ``name`` again (it must have exited) with its config, listening on the
        address it had; returns once it listens."""
        node = self.processes[name]
        if node.process.poll() is None:
            raise ClusterError(f"{name} is still running (pid {node.process.pid})")
        port = int(node.address.rpartition(":")[2])
        text = node.config_path.read_text()
        text = re.sub(r"(?m)^listen_port = \d+$", f"listen_port = {port}", text)
        module = {"mgmtd": "mgmtd.main", "storage": "storage.main", "meta": "meta.main"}[name.split("-")[0]]
        restarted = self._spawn(name, node.node_id, module, text, append_logs=True)
        await self._wait_listening(restarted)
        return restarted

    def _mgmtd_config(self, node_id: int = MGMTD_NODE_ID, name: str = "mgmtd") -> str:
        return configs.mgmtd_config(
            cluster_id=self.cluster_id,
            node_id=node_id,
            host=self._host_of(name),
            port=0,
            kv_url=f"sqlite:///{self.dir}/mgmtd/mgmtd.db",
            secret_file=self.secret_file,
            timing=_TIMING,
            extra=self.mgmtd_config_extra,
        )

    def _storage_config(self, node_id: int) -> str:
        return configs.storage_config(
            cluster_id=self.cluster_id,
            node_id=node_id,
            port=0,
            host=self._host_of(f"storage-{node_id}"),
            mgmtd_address=self.mgmtd_addresses,
            secret_file=self.secret_file,
            data_dir=self.dir / f"storage-{node_id}",
            targets_per_node=self.targets_per_node,
            fsync=self.fsync,
            timing=_TIMING,
            extra=self.storage_config_extra,
        )

    def _meta_config(self, node_id: int) -> str:
        return configs.meta_config(
            cluster_id=self.cluster_id,
            node_id=node_id,
            port=0,
            host=self._host_of(f"meta-{node_id}"),
            mgmtd_address=self.mgmtd_addresses,
            secret_file=self.secret_file,
            kv_url=self.meta_kv_url,
            chunk_size=None,
            gc_delay_s=self.gc_delay_s,
            session_prune_interval_s=self.session_prune_interval_s,
            timing=_TIMING,
            extra=self.meta_config_extra,
        )

    def _spawn(
        self, name: str, node_id: int, module: str, config: str, *, append_logs: bool = False
    ) -> NodeProcess:
        config_path = self.dir / f"{name}.toml"
        config_path.write_text(config)
        out_path, log_path = self.dir / f"{name}.out", self.dir / f"{name}.log"
        out_path.unlink(missing_ok=True)  # the listening line is awaited in it
        with out_path.open("wb") as out, log_path.open("ab" if append_logs else "wb") as log:
            process = subprocess.Popen(
                self._wrap_command(name, [sys.executable, "-m", module, "--config", str(config_path)]),
                stdout=out,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=self._root,
                env=dict(os.environ),
            )
        node = NodeProcess(name, node_id, config_path, out_path, log_path, process)
        self.processes[name] = node
        return node

    async def _wait_listening(self, node: NodeProcess) -> None:
        """Poll ``<name>.out`` for ``<kind> <node_id> listening on HOST:PORT``."""

        def check_alive() -> None:
            if node.process.poll() is not None:
                raise ClusterError(
                    f"{node.name} exited with status {node.process.returncode} before listening; "
                    f"log tail:\n{node.log_tail()}"
                )

        kind = node.name.split("-")[0]
        node.address = await bootstrap.wait_listening(node.out_path, kind, node.node_id, check_alive)

    def _check_alive(self) -> None:
        for node in self.processes.values():
            if node.process.poll() is not None:
                raise ClusterError(
                    f"{node.name} exited with status {node.process.returncode}; log tail:\n{node.log_tail()}"
                )
