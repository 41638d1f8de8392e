"""client: routing cache, meta/storage clients, the FileSystem API, FUSE and the CLI. Arrives with issue 6."""

from client.chunk_io import ChunkRead, ChunkWrite
from client.config import (
    ClusterConfig,
    MgmtdClientConfig,
    StorageClientConfig,
    load_cluster_config,
    read_secret_file,
)
from client.connect import connect, open_filesystem
from client.fs import AsyncFile, AsyncFileSystem, File, FileSystem, FileSystemConfig
from client.mgmtd import MgmtdClient
from client.routing import ROUTING_MISMATCH_CODES, RoutingCache, RoutingView
from client.storage import StorageClient

__all__ = [
    "ROUTING_MISMATCH_CODES",
    "AsyncFile",
    "AsyncFileSystem",
    "ChunkRead",
    "ChunkWrite",
    "ClusterConfig",
    "File",
    "FileSystem",
    "FileSystemConfig",
    "MgmtdClient",
    "MgmtdClientConfig",
    "RoutingCache",
    "RoutingView",
    "StorageClient",
    "StorageClientConfig",
    "connect",
    "load_cluster_config",
    "open_filesystem",
    "read_secret_file",
]
