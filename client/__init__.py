"""client: routing cache, meta/storage clients, the FileSystem API, FUSE and the CLI. Arrives with issue 6."""

from client.config import ClusterConfig, MgmtdClientConfig, load_cluster_config, read_secret_file
from client.mgmtd import MgmtdClient
from client.routing import ROUTING_MISMATCH_CODES, RoutingCache, RoutingView

__all__ = [
    "ROUTING_MISMATCH_CODES",
    "ClusterConfig",
    "MgmtdClient",
    "MgmtdClientConfig",
    "RoutingCache",
    "RoutingView",
    "load_cluster_config",
    "read_secret_file",
]
