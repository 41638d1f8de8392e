"""threefs.local: a whole cluster on this machine (``threefs up`` / ``down`` / ``status``) and the
pieces the test harness shares with it (configs, bring-up over RPC, detached processes)."""

from threefs.local.launcher import LaunchError, UpOptions, down, running_pids, up
from threefs.local.layout import DATA_DIR_ENV, ClusterDir, ClusterState, default_data_dir
from threefs.local.status import cluster_status

__all__ = [
    "DATA_DIR_ENV",
    "ClusterDir",
    "ClusterState",
    "LaunchError",
    "UpOptions",
    "cluster_status",
    "default_data_dir",
    "down",
    "running_pids",
    "up",
]
