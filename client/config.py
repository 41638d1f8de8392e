"""Client-side configuration: how to find the cluster (``ClusterConfig``) and how the mgmtd client
retries (``MgmtdClientConfig``), plus loading the cluster secret from its file."""

from __future__ import annotations

import math
from pathlib import Path

import msgspec

from threefs.config import Section, load_config
from threefs.errors import Code, ThreeFSError
from threefs.rpc import parse_address
from threefs.secret import read_secret_file, resolve_beside

__all__ = ["ClusterConfig", "MgmtdClientConfig", "load_cluster_config", "read_secret_file"]


class MgmtdClientConfig(Section):
    """How ``MgmtdClient`` retries.

    ``request_timeout_s``: the whole time one call may take, primary discovery and retries
    included (a caller's ``timeout_s`` replaces it for that call). ``attempt_timeout_s``: the
    deadline of each single RPC attempt. ``retry_initial_backoff_s`` / ``retry_max_backoff_s``:
    the pause between rounds of attempts doubles from the first to the second.
    """

    request_timeout_s: float = 30.0
    attempt_timeout_s: float = 5.0
    retry_initial_backoff_s: float = 0.05
    retry_max_backoff_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("request_timeout_s", "attempt_timeout_s", "retry_initial_backoff_s"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ThreeFSError(Code.CONFIG_INVALID, f"mgmtd_client.{name} must be a finite number > 0")
        if not self.retry_max_backoff_s >= self.retry_initial_backoff_s:
            raise ThreeFSError(
                Code.CONFIG_INVALID, "mgmtd_client.retry_max_backoff_s must be >= retry_initial_backoff_s"
            )


class ClusterConfig(Section):
    """What a client (the CLI, a FUSE mount, a library user) needs to reach a cluster.

    ``mgmtd_addresses``: every mgmtd's ``"host:port"``; any one of them leads to the primary.
    ``cluster_secret_file``: a file holding the cluster secret (surrounding whitespace is
    ignored); a relative path is relative to the config file's directory ("" = none given).
    Example::

        mgmtd_addresses = ["10.0.0.1:9000", "10.0.0.2:9000"]
        cluster_secret_file = "secret"

        [mgmtd_client]
        request_timeout_s = 10.0
    """

    mgmtd_addresses: list[str] = msgspec.field(default_factory=list)
    cluster_secret_file: str = ""
    mgmtd_client: MgmtdClientConfig = msgspec.field(default_factory=MgmtdClientConfig)

    def __post_init__(self) -> None:
        for address in self.mgmtd_addresses:
            try:
                parse_address(address)
            except ThreeFSError as exc:
                raise ThreeFSError(Code.CONFIG_INVALID, f"mgmtd_addresses: {exc.message}") from None


def load_cluster_config(path: str | Path) -> ClusterConfig:
    """Read a ``ClusterConfig`` TOML file; ``cluster_secret_file`` comes back as an absolute path.

    Raises ``ThreeFSError(CONFIG_INVALID)`` naming the file (and key) when it is missing or wrong.
    """
    path = Path(path)
    config = load_config(ClusterConfig, path)
    if config.cluster_secret_file:
        secret_path = resolve_beside(config.cluster_secret_file, path)
        config = msgspec.structs.replace(config, cluster_secret_file=secret_path)
    return config
