"""The mgmtd configuration (one TOML file, ``threefs-mgmtd --config F``) and the cluster secret.

Every key has a default (see docs/mgmtd.md for the table); ranges are checked when the file is
loaded, so a bad value stops the process before it listens.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec

from threefs.config import Section, load_config
from threefs.rpc.config import RpcServerConfig
from threefs.secret import SECRET_ENV, cluster_secret, resolve_beside
from threefs.service.node_config import LOG_LEVELS, bad_setting, check_node_settings

__all__ = ["LOG_LEVELS", "MgmtdConfig", "SECRET_ENV", "load_cluster_secret", "load_mgmtd_config"]


class MgmtdConfig(Section):
    """Settings of one mgmtd process.

    ``node_id`` names this mgmtd in the lease row (distinct per mgmtd). ``listen_port`` 0 picks a
    free port. ``advertise_address`` is what the lease row (and so NOT_PRIMARY replies) tells
    other nodes; "" means ``listen_host:bound port`` (the host name when listening on a wildcard).
    ``kv_url`` is a ``threefs.kv.open_engine`` URL shared by every mgmtd of the cluster.
    ``cluster_secret_file``: a file holding the cluster secret; "" means the secret comes from
    the ``THREEFS_CLUSTER_SECRET`` environment variable. Times are seconds.
    ``heartbeat_interval_s`` is told to nodes in heartbeat replies; a node silent for
    ``heartbeat_timeout_s`` is FAILED. ``lease_s`` is the primary lease period: the holder
    renews it every third of it, and a successor takes over at most ``lease_s`` after the
    primary's last renewal. ``chain_grace_s``: a new chain's targets are not failed for want of
    a heartbeat during this time. ``updater_interval_s``: how often the chain updater runs (it
    also runs at once after a heartbeat changes a state). ``metrics_port``: -1 off, 0 any free
    port, else the port of the Prometheus endpoint (on ``metrics_host``, "" = ``listen_host``).
    """

    cluster_id: str = "threefs"
    node_id: int = 1
    listen_host: str = "127.0.0.1"
    listen_port: int = 8000
    advertise_address: str = ""
    kv_url: str = "sqlite:///var/lib/threefs/mgmtd.db"
    cluster_secret_file: str = ""
    heartbeat_interval_s: float = 10.0
    heartbeat_timeout_s: float = 60.0
    max_clock_skew_s: float = 30.0
    lease_s: float = 10.0
    chain_grace_s: float = 60.0
    updater_interval_s: float = 1.0
    metrics_host: str = ""
    metrics_port: int = -1
    log_level: str = "INFO"
    rpc: RpcServerConfig = msgspec.field(default_factory=RpcServerConfig)

    def __post_init__(self) -> None:
        check_node_settings(self)
        if not self.kv_url:
            raise bad_setting("kv_url", "a KV engine URL", self.kv_url)
        for key in ("heartbeat_interval_s", "heartbeat_timeout_s", "max_clock_skew_s", "lease_s"):
            if not getattr(self, key) > 0:
                raise bad_setting(key, "> 0", getattr(self, key))
        if self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            raise bad_setting(
                "heartbeat_timeout_s",
                f"> heartbeat_interval_s ({self.heartbeat_interval_s})",
                self.heartbeat_timeout_s,
            )
        if self.chain_grace_s < 0:
            raise bad_setting("chain_grace_s", ">= 0", self.chain_grace_s)
        if not self.updater_interval_s > 0:
            raise bad_setting("updater_interval_s", "> 0", self.updater_interval_s)

    @property
    def lease_ms(self) -> int:
        return int(self.lease_s * 1000)

    @property
    def heartbeat_timeout_ms(self) -> int:
        return int(self.heartbeat_timeout_s * 1000)

    @property
    def max_clock_skew_ms(self) -> int:
        return int(self.max_clock_skew_s * 1000)

    @property
    def chain_grace_ms(self) -> int:
        return int(self.chain_grace_s * 1000)


def load_cluster_secret(config: MgmtdConfig, environ: Mapping[str, str] | None = None) -> bytes:
    """The cluster secret for ``config`` (see ``threefs.secret``: the named file wins, else the
    ``THREEFS_CLUSTER_SECRET`` variable). ``load_mgmtd_config`` has already made a relative
    ``cluster_secret_file`` relative to the config file. Raises ``CONFIG_INVALID``."""
    return cluster_secret(config.cluster_secret_file, environ)


def load_mgmtd_config(path: str | Path | None) -> MgmtdConfig:
    """``load_config`` for mgmtd, with ``cluster_secret_file`` resolved beside the config file."""
    config = load_config(MgmtdConfig, path)
    if config.cluster_secret_file:
        resolved = resolve_beside(config.cluster_secret_file, path)
        config = msgspec.structs.replace(config, cluster_secret_file=resolved)
    return config
