"""The TOML configs of a cluster on one machine (mgmtd, storage nodes, meta servers), shared by
``threefs up`` (``threefs.local.launcher``) and the test harness (``threefs.testing.cluster``).

Node ids: mgmtd 1, storage nodes 11, 12, ...; storage node ``n`` holds targets
``n*100 + 1 .. n*100 + targets_per_node``; meta servers 1001, 1002, .... ``Timing`` holds the
heartbeat, lease and refresh periods (tests use short ones, a local cluster moderate ones).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FIRST_META_NODE_ID",
    "FIRST_STORAGE_NODE_ID",
    "MGMTD_NODE_ID",
    "TABLE_ID",
    "Timing",
    "meta_config",
    "meta_node_ids",
    "mgmtd_config",
    "storage_config",
    "storage_node_ids",
    "target_ids",
]

MGMTD_NODE_ID = 1
FIRST_STORAGE_NODE_ID = 11
FIRST_META_NODE_ID = 1001
TABLE_ID = 1


@dataclass(frozen=True)
class Timing:
    """Periods written into every config (seconds)."""

    heartbeat_interval_s: float = 0.5
    heartbeat_timeout_s: float = 5.0
    lease_s: float = 2.0
    updater_interval_s: float = 0.2
    routing_refresh_s: float = 1.0
    gc_interval_s: float = 0.5


def storage_node_ids(count: int) -> list[int]:
    return list(range(FIRST_STORAGE_NODE_ID, FIRST_STORAGE_NODE_ID + count))


def meta_node_ids(count: int) -> list[int]:
    return list(range(FIRST_META_NODE_ID, FIRST_META_NODE_ID + count))


def target_ids(node_id: int, targets_per_node: int) -> list[int]:
    return [node_id * 100 + k for k in range(1, targets_per_node + 1)]


def _quote(value: str | Path) -> str:
    return json.dumps(str(value))  # JSON string escapes are valid TOML basic strings


def _addresses(mgmtd_address: str | Sequence[str]) -> str:
    """A TOML list of mgmtd addresses (one address or several)."""
    addresses = [mgmtd_address] if isinstance(mgmtd_address, str) else list(mgmtd_address)
    return "[" + ", ".join(_quote(a) for a in addresses) + "]"


def _listen(port: int, host: str) -> str:
    return f"listen_port = {port}\n" + ("" if host == "127.0.0.1" else f"listen_host = {_quote(host)}\n")


def mgmtd_config(
    *,
    cluster_id: str,
    port: int,
    kv_url: str,
    secret_file: Path,
    timing: Timing,
    extra: str = "",
    node_id: int = MGMTD_NODE_ID,
    host: str = "127.0.0.1",
) -> str:
    """A mgmtd's config: node ``node_id`` on ``host``:``port`` (0: any free port). Several
    mgmtds share one KV engine (``kv_url``); one holds the primary lease."""
    return (
        f"cluster_id = {_quote(cluster_id)}\nnode_id = {node_id}\n{_listen(port, host)}"
        f"kv_url = {_quote(kv_url)}\ncluster_secret_file = {_quote(secret_file)}\n"
        f"heartbeat_interval_s = {timing.heartbeat_interval_s!r}\n"
        f"heartbeat_timeout_s = {timing.heartbeat_timeout_s!r}\nlease_s = {timing.lease_s!r}\n"
        f"updater_interval_s = {timing.updater_interval_s!r}\n" + extra
    )


def storage_config(
    *,
    cluster_id: str,
    node_id: int,
    port: int,
    mgmtd_address: str | Sequence[str],
    secret_file: Path,
    data_dir: Path,
    targets_per_node: int,
    fsync: bool,
    timing: Timing,
    extra: str = "",
    host: str = "127.0.0.1",
) -> str:
    """A storage node's config with its targets under ``data_dir`` (``mgmtd_address``: one
    address or a list)."""
    targets = "".join(f"\n[[targets]]\ntarget_id = {t}\n" for t in target_ids(node_id, targets_per_node))
    return (
        f"cluster_id = {_quote(cluster_id)}\nnode_id = {node_id}\n{_listen(port, host)}"
        f"mgmtd_addresses = {_addresses(mgmtd_address)}\ncluster_secret_file = {_quote(secret_file)}\n"
        f"data_dir = {_quote(data_dir)}\nfsync = {'true' if fsync else 'false'}\n"
        f"routing_refresh_s = {timing.routing_refresh_s!r}\n" + extra + targets
    )


def meta_config(
    *,
    cluster_id: str,
    node_id: int,
    port: int,
    mgmtd_address: str | Sequence[str],
    secret_file: Path,
    kv_url: str,
    chunk_size: int | None,
    gc_delay_s: float,
    session_prune_interval_s: float,
    timing: Timing,
    extra: str = "",
    root_owner: tuple[int, int] | None = None,
    host: str = "127.0.0.1",
) -> str:
    """A meta server's config; with ``chunk_size`` the root directory's default layout uses chain
    table 1 and that chunk size (``None``: meta's defaults, or whatever ``extra`` sets); with
    ``root_owner`` (uid, gid) the root directory is created owned by them."""
    layout = (
        "" if chunk_size is None else f"default_table_id = {TABLE_ID}\ndefault_chunk_size = {chunk_size}\n"
    )
    return (
        f"cluster_id = {_quote(cluster_id)}\nnode_id = {node_id}\n{_listen(port, host)}"
        f"mgmtd_addresses = {_addresses(mgmtd_address)}\ncluster_secret_file = {_quote(secret_file)}\n"
        f"kv_url = {_quote(kv_url)}\nrouting_refresh_s = {timing.routing_refresh_s!r}\n"
        f"gc_interval_s = {timing.gc_interval_s!r}\ngc_delay_s = {gc_delay_s!r}\n"
        f"{layout}session_prune_interval_s = {session_prune_interval_s!r}\n"
        + ("" if root_owner is None else f"root_uid = {root_owner[0]}\nroot_gid = {root_owner[1]}\n")
        + extra
    )
