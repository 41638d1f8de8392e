"""The files of a local cluster under its data directory, and the choices ``threefs up`` made
when it first created the cluster (``launcher.toml``)::

    DIR/cluster.toml        client config: mgmtd_addresses, cluster_secret_file = "secret"
    DIR/secret              the cluster secret (mode 0600)
    DIR/launcher.toml       nodes, targets, replicas, chunk size, KV, the ports chosen
    DIR/conf/NAME.toml      each process's config (mgmtd, storage-11, ..., meta-1001)
    DIR/logs/NAME.out       its stdout (the "listening on" line), truncated at each start
    DIR/logs/NAME.log       its stderr log, appended to across restarts
    DIR/run/NAME.pid        its pid while started by threefs up; run/mount.path: the mount point
    DIR/mgmtd/, DIR/meta/   sqlite KV files (with --kv sqlite)
    DIR/storage-N/          storage node N's targets
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import threefs
from threefs.config import Section, load_config
from threefs.errors import Code, ThreeFSError
from threefs.layout import MAX_CHUNK_SIZE, MIN_CHUNK_SIZE
from threefs.local import configs
from threefs.local.processes import ManagedProcess
from threefs.service.toml_dump import dump_toml

__all__ = ["DATA_DIR_ENV", "ClusterDir", "ClusterState", "default_data_dir", "kv_urls", "validate_kv"]

DATA_DIR_ENV = "THREEFS_DATA_DIR"
HOST = "127.0.0.1"
# A local cluster notices a dead node within seconds without flooding its own logs.
TIMING = configs.Timing(
    heartbeat_interval_s=1.0,
    heartbeat_timeout_s=10.0,
    lease_s=5.0,
    updater_interval_s=0.5,
    routing_refresh_s=2.0,
    gc_interval_s=2.0,
)


def default_data_dir() -> Path:
    """``$THREEFS_DATA_DIR``, else ``~/.threefs``."""
    return Path(os.environ.get(DATA_DIR_ENV) or Path.home() / ".threefs")


class ClusterState(Section):
    """What ``threefs up`` chose at the first start (``DIR/launcher.toml``); later starts reuse it
    so addresses and ids never change."""

    cluster_id: str = "local"
    storage_nodes: int = 3
    targets_per_node: int = 2
    replicas: int = 3
    chunk_size: int = 1 << 20
    kv: str = "sqlite"
    mgmtd_port: int = 0
    storage_ports: list[int] = []
    meta_port: int = 0

    def __post_init__(self) -> None:
        check_shape(self.storage_nodes, self.targets_per_node, self.replicas, self.chunk_size)
        validate_kv(self.kv)
        if self.mgmtd_port and len(self.storage_ports) != self.storage_nodes:
            raise ThreeFSError(Code.CONFIG_INVALID, "storage_ports must name one port per storage node")


def check_shape(storage_nodes: int, targets_per_node: int, replicas: int, chunk_size: int) -> None:
    """Raise ``ThreeFSError(INVALID_ARG)`` unless the numbers make a cluster."""
    if not 1 <= storage_nodes <= 64:
        raise ThreeFSError(Code.INVALID_ARG, f"--storage-nodes must be in [1, 64], not {storage_nodes}")
    if not 1 <= targets_per_node <= 64:
        raise ThreeFSError(Code.INVALID_ARG, f"--targets-per-node must be in [1, 64], not {targets_per_node}")
    if not 1 <= replicas <= storage_nodes:
        raise ThreeFSError(
            Code.INVALID_ARG,
            f"--replicas must be in [1, --storage-nodes ({storage_nodes})], not {replicas}: "
            "each replica of a chain lives on a different node",
        )
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE or chunk_size & (chunk_size - 1):
        raise ThreeFSError(
            Code.INVALID_ARG, f"--chunk-size must be a power of two in [64 KiB, 64 MiB], not {chunk_size}"
        )


def validate_kv(kv: str) -> str:
    """``kv`` if it is ``sqlite``, ``postgresql://...`` (or ``postgres://``), ``fdb:CLUSTERFILE``
    or ``fdb`` (the default cluster file); else ``ThreeFSError(INVALID_ARG)``."""
    if kv == "sqlite" or kv == "fdb" or kv.startswith(("postgresql://", "postgres://")):
        return kv
    if kv.startswith("fdb:") and not kv.startswith("fdb://") and len(kv) > 4:
        return kv
    raise ThreeFSError(
        Code.INVALID_ARG, f"--kv must be sqlite, postgresql://..., fdb or fdb:CLUSTERFILE, not {kv!r}"
    )


def _with_query(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    return urlunsplit(parts._replace(query=urlencode([*pairs, (name, value)])))


def kv_urls(kv: str, data_dir: Path) -> tuple[str, str]:
    """The KV engine URLs of mgmtd and of the meta servers for ``--kv kv``. One server (Postgres,
    FoundationDB) is shared, each service in its own table / key prefix; sqlite gets two files."""
    if kv == "sqlite":
        return f"sqlite:///{data_dir}/mgmtd/mgmtd.db", f"sqlite:///{data_dir}/meta/meta.db"
    if kv.startswith(("postgresql://", "postgres://")):
        table = dict(parse_qsl(urlsplit(kv).query)).get("table", "threefs")
        return _with_query(kv, "table", f"{table}_mgmtd"), _with_query(kv, "table", f"{table}_meta")
    cluster_file = "" if kv == "fdb" else str(Path(kv[4:]).expanduser().absolute())
    base = f"fdb://{cluster_file}"
    return f"{base}?prefix=threefs.mgmtd.", f"{base}?prefix=threefs.meta."


class ClusterDir:
    """The paths of one data directory (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().absolute()
        self.cluster_config = self.path / "cluster.toml"
        self.secret_file = self.path / "secret"
        self.state_file = self.path / "launcher.toml"
        self.conf_dir = self.path / "conf"
        self.log_dir = self.path / "logs"
        self.run_dir = self.path / "run"
        self.mount_path_file = self.run_dir / "mount.path"

    def load_state(self) -> ClusterState | None:
        """The recorded state, or ``None`` when this directory holds no cluster yet."""
        if not self.state_file.exists():
            return None
        return load_config(ClusterState, self.state_file)

    def save_state(self, state: ClusterState) -> None:
        header = "# written by `threefs up` at the first start; edit only with the cluster down\n"
        data = {name: getattr(state, name) for name in state.__struct_fields__}
        self.state_file.write_text(header + dump_toml(data))

    def mgmtd_address(self, state: ClusterState) -> str:
        return f"{HOST}:{state.mgmtd_port}"

    def _process(self, name: str, module: str) -> ManagedProcess:
        config = self.conf_dir / f"{name}.toml"
        return ManagedProcess(
            name=name,
            argv=[sys.executable, "-m", module, "--config", str(config)],
            marker=str(config),
            pid_path=self.run_dir / f"{name}.pid",
            out_path=self.log_dir / f"{name}.out",
            log_path=self.log_dir / f"{name}.log",
        )

    def mgmtd_process(self) -> ManagedProcess:
        return self._process("mgmtd", "mgmtd.main")

    def storage_processes(self, state: ClusterState) -> dict[int, ManagedProcess]:
        return {
            n: self._process(f"storage-{n}", "storage.main")
            for n in configs.storage_node_ids(state.storage_nodes)
        }

    def meta_process(self) -> ManagedProcess:
        return self._process(f"meta-{configs.FIRST_META_NODE_ID}", "meta.main")

    def service_processes(self, state: ClusterState) -> list[ManagedProcess]:
        """mgmtd, the storage nodes and the meta server, in start order."""
        return [self.mgmtd_process(), *self.storage_processes(state).values(), self.meta_process()]

    def mount_process(self, mountpoint: Path) -> ManagedProcess:
        """The FUSE daemon (``threefs mount MOUNTPOINT -f``) for ``mountpoint``."""
        argv = [sys.executable, "-m", "client.cli", "mount", str(mountpoint)]
        argv += ["--cluster-config", str(self.cluster_config), "-f"]
        return ManagedProcess(
            name="mount",
            argv=argv,
            marker=str(mountpoint),
            pid_path=self.run_dir / "mount.pid",
            out_path=self.log_dir / "mount.out",
            log_path=self.log_dir / "mount.log",
        )

    def recorded_mountpoint(self) -> Path | None:
        try:
            return Path(self.mount_path_file.read_text().strip())
        except OSError:
            return None

    def node_ports(self, state: ClusterState) -> dict[str, int]:
        """Each service process's recorded port, by process name."""
        ports = {"mgmtd": state.mgmtd_port, self.meta_process().name: state.meta_port}
        for node_id, port in zip(self.storage_processes(state), state.storage_ports, strict=True):
            ports[f"storage-{node_id}"] = port
        return ports

    def write_configs(self, state: ClusterState) -> None:
        """(Re)write every process's config and the client config from ``state``."""
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        mgmtd_kv, meta_kv = kv_urls(state.kv, self.path)
        if state.kv == "sqlite":
            (self.path / "mgmtd").mkdir(exist_ok=True)
            (self.path / "meta").mkdir(exist_ok=True)
        address = self.mgmtd_address(state)
        common = {"cluster_id": state.cluster_id, "secret_file": self.secret_file, "timing": TIMING}
        (self.conf_dir / "mgmtd.toml").write_text(
            configs.mgmtd_config(port=state.mgmtd_port, kv_url=mgmtd_kv, **common)  # type: ignore[arg-type]
        )
        for (node_id, process), port in zip(
            self.storage_processes(state).items(), state.storage_ports, strict=True
        ):
            text = configs.storage_config(
                node_id=node_id,
                port=port,
                mgmtd_address=address,
                data_dir=self.path / f"storage-{node_id}",
                targets_per_node=state.targets_per_node,
                fsync=True,
                **common,  # type: ignore[arg-type]
            )
            Path(process.marker).write_text(text)
        text = configs.meta_config(
            node_id=configs.FIRST_META_NODE_ID,
            port=state.meta_port,
            mgmtd_address=address,
            kv_url=meta_kv,
            chunk_size=state.chunk_size,
            gc_delay_s=60.0,
            session_prune_interval_s=10.0,
            root_owner=(os.getuid(), os.getgid()),  # the user who ran `threefs up` owns "/"
            **common,  # type: ignore[arg-type]
        )
        Path(self.meta_process().marker).write_text(text)

    def write_cluster_config(self, state: ClusterState) -> None:
        """``DIR/cluster.toml``, what clients read (``--cluster-config``, ``threefs.connect``)."""
        text = "# threefs client config of the local cluster in this directory (threefs up)\n" + dump_toml(
            {"mgmtd_addresses": [self.mgmtd_address(state)], "cluster_secret_file": "secret"}
        )
        self.cluster_config.write_text(text)


def project_root() -> Path:
    """The directory holding the ``threefs`` package (the processes' working directory)."""
    return Path(threefs.__file__).resolve().parent.parent
