"""client: routing cache, meta/storage clients, the FileSystem API, FUSE and the CLI. Arrives with issue 6."""

from client.chunk_io import ChunkRead, ChunkWrite
from client.config import (
    ClusterConfig,
    MgmtdClientConfig,
    StorageClientConfig,
    load_cluster_config,
    read_secret_file,
)
from client.mgmtd import MgmtdClient
from client.routing import ROUTING_MISMATCH_CODES, RoutingCache, RoutingView
from client.storage import StorageClient

__all__ = [
    "ROUTING_MISMATCH_CODES",
    "ChunkRead",
    "ChunkWrite",
    "ClusterConfig",
    "MgmtdClient",
    "MgmtdClientConfig",
    "RoutingCache",
    "RoutingView",
    "StorageClient",
    "StorageClientConfig",
    "load_cluster_config",
    "read_secret_file",
]
