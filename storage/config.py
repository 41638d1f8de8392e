"""The storage node configuration (one TOML file, ``threefs-storage --config F``) and the cluster
secret.

Every key has a default (docs/storage.md has the table); values are checked when the file is
loaded, so a bad value stops the process before it listens. Relative paths (the secret file, the
data directory, target paths) are taken relative to the config file's directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec

from client.config import MgmtdClientConfig
from threefs.config import Section, load_config
from threefs.errors import ThreeFSError
from threefs.rpc import parse_address
from threefs.rpc.config import RpcClientConfig, RpcServerConfig
from threefs.secret import SECRET_ENV, cluster_secret, resolve_beside
from threefs.service.node_config import LOG_LEVELS, U32_MAX, bad_setting, check_node_settings

__all__ = [
    "LOG_LEVELS",
    "SECRET_ENV",
    "StorageConfig",
    "TargetConfig",
    "load_cluster_secret",
    "load_storage_config",
]


class TargetConfig(Section):
    """One target served by this node: its id (as declared in mgmtd) and its directory ("" =
    ``<data_dir>/target-<id>``)."""

    target_id: int
    path: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.target_id <= U32_MAX:
            raise bad_setting("targets.target_id", "in [1, 2^32)", self.target_id)


class StorageConfig(Section):
    """Settings of one storage node (see docs/storage.md for each key).

    ``node_id`` (required, >= 1) names the node in mgmtd; ``mgmtd_addresses`` (at least one)
    lead to the primary mgmtd. ``targets`` are opened at start; targets made later with the
    CreateTarget RPC are remembered in ``<data_dir>/targets.json``. ``heartbeat_interval_s`` 0
    means the interval mgmtd names in its heartbeat replies. ``update_timeout_s`` bounds an
    update whose caller gave no deadline. ``metrics_port``: -1 off, 0 any free port.
    ``min_free_bytes`` / ``min_free_ratio``: the free space each target keeps; a target with
    less refuses new chunks (both 0: no reserve); its free space is sampled at most every
    ``free_space_refresh_s`` seconds. ``inline_read_max_bytes``: reads up to this size are
    served on the event loop when their pages are cached (0: never); with
    ``inline_reads_wait_for_disk`` also when they are not (see storage/ops/read.py).
    ``inline_store_max_s``: store calls on one chunk (an update's steps, a larger read) run on
    the event loop while that kind of call on that target recently took less than this (a
    moving average), in a worker thread otherwise (0: always in a thread).
    """

    cluster_id: str = "threefs"
    node_id: int = 0
    listen_host: str = "127.0.0.1"
    listen_port: int = 9000
    advertise_address: str = ""
    mgmtd_addresses: list[str] = msgspec.field(default_factory=list)
    cluster_secret_file: str = ""
    data_dir: str = "/var/lib/threefs/storage"
    targets: list[TargetConfig] = msgspec.field(default_factory=list)
    fsync: bool = True
    heartbeat_interval_s: float = 0.0
    routing_refresh_s: float = 5.0
    resync_interval_s: float = 1.0
    update_timeout_s: float = 30.0
    max_concurrent_updates: int = 64
    max_concurrent_reads: int = 64
    inline_read_max_bytes: int = 64 << 10
    inline_reads_wait_for_disk: bool = True
    inline_store_max_s: float = 0.001
    dedup_seqs_per_channel: int = 16
    dedup_max_channels: int = 65536
    min_free_bytes: int = 1 << 30
    min_free_ratio: float = 0.02
    free_space_refresh_s: float = 1.0
    metrics_host: str = ""
    metrics_port: int = -1
    log_level: str = "INFO"
    rpc: RpcServerConfig = msgspec.field(default_factory=RpcServerConfig)
    rpc_client: RpcClientConfig = msgspec.field(default_factory=RpcClientConfig)
    mgmtd_client: MgmtdClientConfig = msgspec.field(default_factory=MgmtdClientConfig)

    def __post_init__(self) -> None:
        check_node_settings(self)
        if not self.mgmtd_addresses:
            raise bad_setting("mgmtd_addresses", "a list of at least one HOST:PORT", self.mgmtd_addresses)
        for address in self.mgmtd_addresses:
            try:
                parse_address(address)
            except ThreeFSError:
                raise bad_setting("mgmtd_addresses", "a list of HOST:PORT", address) from None
        if not self.data_dir:
            raise bad_setting("data_dir", "a directory", self.data_dir)
        ids = [target.target_id for target in self.targets]
        if len(set(ids)) != len(ids):
            raise bad_setting("targets", "distinct target ids", ids)
        if self.heartbeat_interval_s < 0:
            raise bad_setting("heartbeat_interval_s", ">= 0", self.heartbeat_interval_s)
        for key in ("routing_refresh_s", "resync_interval_s", "update_timeout_s"):
            if not getattr(self, key) > 0:
                raise bad_setting(key, "> 0", getattr(self, key))
        for key in ("max_concurrent_updates", "max_concurrent_reads", "dedup_seqs_per_channel"):
            if not 1 <= getattr(self, key) <= 4096:
                raise bad_setting(key, "in [1, 4096]", getattr(self, key))
        if not 1 <= self.dedup_max_channels <= 1 << 24:
            raise bad_setting("dedup_max_channels", "in [1, 2^24]", self.dedup_max_channels)
        if self.min_free_bytes < 0:
            raise bad_setting("min_free_bytes", ">= 0 (0: no fixed reserve)", self.min_free_bytes)
        if not 0 <= self.min_free_ratio < 1:
            raise bad_setting("min_free_ratio", "in [0, 1) (0: no proportional reserve)", self.min_free_ratio)
        if not 0 <= self.inline_read_max_bytes <= 1 << 20:
            raise bad_setting("inline_read_max_bytes", "in [0, 1 MiB]", self.inline_read_max_bytes)
        if not 0 <= self.inline_store_max_s <= 1:
            raise bad_setting("inline_store_max_s", "in [0, 1] seconds (0: never)", self.inline_store_max_s)
        if self.free_space_refresh_s < 0:
            raise bad_setting("free_space_refresh_s", ">= 0", self.free_space_refresh_s)

    def target_path(self, target: TargetConfig) -> Path:
        """The directory of ``target`` (its own ``path``, or one under ``data_dir``)."""
        return Path(target.path) if target.path else Path(self.data_dir) / f"target-{target.target_id}"


def load_cluster_secret(config: StorageConfig, environ: Mapping[str, str] | None = None) -> bytes:
    """The cluster secret for ``config`` (``threefs.secret``: the named file wins, else the
    ``THREEFS_CLUSTER_SECRET`` variable). Raises ``CONFIG_INVALID``."""
    return cluster_secret(config.cluster_secret_file, environ)


def load_storage_config(path: str | Path | None) -> StorageConfig:
    """``load_config`` for a storage node, with the secret file, ``data_dir`` and target paths
    resolved beside the config file. Raises ``CONFIG_INVALID`` naming the file and key."""
    config = load_config(StorageConfig, path)
    targets = [
        msgspec.structs.replace(target, path=resolve_beside(target.path, path)) for target in config.targets
    ]
    return msgspec.structs.replace(
        config,
        cluster_secret_file=resolve_beside(config.cluster_secret_file, path),
        data_dir=resolve_beside(config.data_dir, path),
        targets=targets,
    )
