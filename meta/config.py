"""The meta server configuration (one TOML file, ``threefs-meta --config F``).

Every key has a default (docs/meta-service.md has the table); values are checked when the file
is loaded, so a bad value stops the process before it listens. A relative
``cluster_secret_file`` is taken relative to the config file's directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec

from client.config import MgmtdClientConfig, StorageClientConfig
from threefs.config import Section, load_config
from threefs.errors import ThreeFSError
from threefs.layout import MAX_CHUNK_SIZE, MIN_CHUNK_SIZE
from threefs.rpc import parse_address
from threefs.rpc.config import RpcClientConfig, RpcServerConfig
from threefs.secret import SECRET_ENV, cluster_secret, resolve_beside
from threefs.service.node_config import LOG_LEVELS, U32_MAX, bad_setting, check_node_settings

__all__ = ["LOG_LEVELS", "SECRET_ENV", "MetaConfig", "load_cluster_secret", "load_meta_config"]


class MetaConfig(Section):
    """Settings of one meta server (see docs/meta-service.md for each key).

    ``node_id`` (required, >= 1) names the server in mgmtd (type META); every meta server of a
    cluster shares ``kv_url`` (a ``threefs.kv.open_engine`` URL). The root directory is created
    at the first start with the default layout: chain table ``default_table_id`` at the version
    mgmtd has, ``default_chunk_size``, and ``min(default_stripe_size, chains in the table)``,
    owned by ``root_uid``/``root_gid`` with mode ``root_mode`` (only at creation: later changes
    go through chown/chmod).
    Removed files wait ``gc_delay_s`` before their chunks are deleted; the GC worker looks for
    due jobs every ``gc_interval_s``. Write sessions of clients that mgmtd no longer lists as
    ACTIVE are pruned every ``session_prune_interval_s``; idempotency records older than
    ``idempotency_retention_s`` are dropped. ``heartbeat_interval_s`` 0: mgmtd's interval.
    ``metrics_port``: -1 off, 0 any free port.
    """

    cluster_id: str = "threefs"
    node_id: int = 0
    listen_host: str = "127.0.0.1"
    listen_port: int = 9100
    advertise_address: str = ""
    mgmtd_addresses: list[str] = msgspec.field(default_factory=list)
    cluster_secret_file: str = ""
    kv_url: str = "sqlite:///var/lib/threefs/meta.db"
    default_table_id: int = 1
    default_chunk_size: int = 1 << 20
    default_stripe_size: int = 16
    root_uid: int = 0
    root_gid: int = 0
    root_mode: int = 0o755
    gc_delay_s: float = 60.0
    gc_interval_s: float = 2.0
    gc_batch: int = 32
    session_prune_interval_s: float = 10.0
    idempotency_retention_s: float = 3600.0
    heartbeat_interval_s: float = 0.0
    routing_refresh_s: float = 5.0
    max_retries: int = 50
    metrics_host: str = ""
    metrics_port: int = -1
    log_level: str = "INFO"
    rpc: RpcServerConfig = msgspec.field(default_factory=RpcServerConfig)
    rpc_client: RpcClientConfig = msgspec.field(default_factory=RpcClientConfig)
    mgmtd_client: MgmtdClientConfig = msgspec.field(default_factory=MgmtdClientConfig)
    storage_client: StorageClientConfig = msgspec.field(default_factory=StorageClientConfig)

    def __post_init__(self) -> None:
        check_node_settings(self)
        if not self.mgmtd_addresses:
            raise bad_setting("mgmtd_addresses", "a list of at least one HOST:PORT", self.mgmtd_addresses)
        for address in self.mgmtd_addresses:
            try:
                parse_address(address)
            except ThreeFSError:
                raise bad_setting("mgmtd_addresses", "a list of HOST:PORT", address) from None
        if not self.kv_url:
            raise bad_setting("kv_url", "a KV engine URL", self.kv_url)
        if not 1 <= self.default_table_id <= U32_MAX:
            raise bad_setting("default_table_id", "in [1, 2^32)", self.default_table_id)
        if not MIN_CHUNK_SIZE <= self.default_chunk_size <= MAX_CHUNK_SIZE:
            raise bad_setting("default_chunk_size", "in [64 KiB, 64 MiB]", self.default_chunk_size)
        if not 1 <= self.default_stripe_size <= 4096:
            raise bad_setting("default_stripe_size", "in [1, 4096]", self.default_stripe_size)
        for key in ("root_uid", "root_gid"):
            if not 0 <= getattr(self, key) <= U32_MAX:
                raise bad_setting(key, "in [0, 2^32)", getattr(self, key))
        if not 0 <= self.root_mode <= 0o7777:
            raise bad_setting("root_mode", "permission bits in [0, 0o7777]", self.root_mode)
        for key in ("gc_delay_s", "heartbeat_interval_s"):
            if not getattr(self, key) >= 0:
                raise bad_setting(key, ">= 0", getattr(self, key))
        for key in (
            "gc_interval_s",
            "session_prune_interval_s",
            "idempotency_retention_s",
            "routing_refresh_s",
        ):
            if not getattr(self, key) > 0:
                raise bad_setting(key, "> 0", getattr(self, key))
        if not 1 <= self.gc_batch <= 10_000:
            raise bad_setting("gc_batch", "in [1, 10000]", self.gc_batch)
        if not 1 <= self.max_retries <= 10_000:
            raise bad_setting("max_retries", "in [1, 10000]", self.max_retries)


def load_cluster_secret(config: MetaConfig, environ: Mapping[str, str] | None = None) -> bytes:
    """The cluster secret for ``config`` (``threefs.secret``: the named file wins, else the
    ``THREEFS_CLUSTER_SECRET`` variable). Raises ``CONFIG_INVALID``."""
    return cluster_secret(config.cluster_secret_file, environ)


def load_meta_config(path: str | Path | None) -> MetaConfig:
    """``load_config`` for a meta server, with ``cluster_secret_file`` resolved beside the config
    file. Raises ``CONFIG_INVALID`` naming the file and key."""
    config = load_config(MetaConfig, path)
    return msgspec.structs.replace(
        config, cluster_secret_file=resolve_beside(config.cluster_secret_file, path)
    )
