"""Client-side configuration: how to find the cluster (``ClusterConfig``), how the mgmtd client
retries (``MgmtdClientConfig``), how the storage client batches and retries
(``StorageClientConfig``), plus loading the cluster secret from its file."""

from __future__ import annotations

import math
from pathlib import Path

import msgspec

from threefs.config import Section, load_config
from threefs.errors import Code, ThreeFSError
from threefs.rpc import parse_address
from threefs.secret import read_secret_file, resolve_beside

__all__ = [
    "ClusterConfig",
    "MgmtdClientConfig",
    "StorageClientConfig",
    "load_cluster_config",
    "read_secret_file",
]


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


class StorageClientConfig(Section):
    """How ``StorageClient`` batches, bounds and retries chunk I/O.

    ``request_timeout_s``: the whole time one chunk I/O may take, retries included.
    ``attempt_timeout_s``: the deadline of each storage RPC. ``max_attempts``: tries per chunk
    I/O (the first included); with pauses capped at ``retry_max_backoff_s`` the default keeps
    retrying for most of ``request_timeout_s``, so an I/O rides out a dead node until mgmtd
    notices (its heartbeat timeout) and moves the chain on. ``retry_initial_backoff_s`` /
    ``retry_max_backoff_s``: the pause between tries doubles from the first to the second.
    ``max_in_flight``: storage RPCs in flight at once per client (all operations together).
    ``batch_max_ios`` / ``batch_max_bytes``: the most reads and bytes in one BatchRead (its
    reply is one frame, so the bytes stay well under the RPC frame limit).
    ``verify_checksums``: check each read's CRC32C.
    """

    request_timeout_s: float = 60.0
    attempt_timeout_s: float = 15.0
    max_attempts: int = 64
    retry_initial_backoff_s: float = 0.02
    retry_max_backoff_s: float = 1.0
    max_in_flight: int = 32
    batch_max_ios: int = 256
    batch_max_bytes: int = 16 << 20
    verify_checksums: bool = True

    def __post_init__(self) -> None:
        for name in ("request_timeout_s", "attempt_timeout_s", "retry_initial_backoff_s"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ThreeFSError(Code.CONFIG_INVALID, f"storage_client.{name} must be a finite number > 0")
        if not self.retry_max_backoff_s >= self.retry_initial_backoff_s:
            raise ThreeFSError(
                Code.CONFIG_INVALID, "storage_client.retry_max_backoff_s must be >= retry_initial_backoff_s"
            )
        for name in ("max_attempts", "max_in_flight", "batch_max_ios"):
            if getattr(self, name) < 1:
                raise ThreeFSError(Code.CONFIG_INVALID, f"storage_client.{name} must be >= 1")
        if not (1 << 20) <= self.batch_max_bytes <= (64 << 20):
            raise ThreeFSError(
                Code.CONFIG_INVALID, "storage_client.batch_max_bytes must be in [1 MiB, 64 MiB]"
            )


class ClusterConfig(Section):
    """What a client (the CLI, a FUSE mount, a library user) needs to reach a cluster.

    ``mgmtd_addresses``: every mgmtd's ``"host:port"``; any one of them leads to the primary.
    ``cluster_secret_file``: a file holding the cluster secret (surrounding whitespace is
    ignored); a relative path is relative to the config file's directory ("" = none given).
    ``token_file``: a file holding a user token (``threefs admin user-add``; mode 0600, a file
    others may read is refused); when set, the client authenticates as that user instead of
    with the cluster secret (docs/security.md); relative as above ("" = none).
    Example::

        mgmtd_addresses = ["10.0.0.1:9000", "10.0.0.2:9000"]
        cluster_secret_file = "secret"

        [mgmtd_client]
        request_timeout_s = 10.0
    """

    mgmtd_addresses: list[str] = msgspec.field(default_factory=list)
    cluster_secret_file: str = ""
    token_file: str = ""
    mgmtd_client: MgmtdClientConfig = msgspec.field(default_factory=MgmtdClientConfig)
    storage_client: StorageClientConfig = msgspec.field(default_factory=StorageClientConfig)

    def __post_init__(self) -> None:
        for address in self.mgmtd_addresses:
            try:
                parse_address(address)
            except ThreeFSError as exc:
                raise ThreeFSError(Code.CONFIG_INVALID, f"mgmtd_addresses: {exc.message}") from None


def load_cluster_config(path: str | Path) -> ClusterConfig:
    """Read a ``ClusterConfig`` TOML file; ``cluster_secret_file`` and ``token_file`` come back
    as absolute paths.

    Raises ``ThreeFSError(CONFIG_INVALID)`` naming the file (and key) when it is missing or wrong.
    """
    path = Path(path)
    config = load_config(ClusterConfig, path)
    if config.cluster_secret_file:
        secret_path = resolve_beside(config.cluster_secret_file, path)
        config = msgspec.structs.replace(config, cluster_secret_file=secret_path)
    if config.token_file:
        config = msgspec.structs.replace(config, token_file=resolve_beside(config.token_file, path))
    return config
