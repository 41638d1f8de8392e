"""Connecting to a cluster: ``connect(...)`` (the synchronous ``FileSystem``, also
``threefs.connect``) and ``open_filesystem(...)`` (an ``AsyncFileSystem`` for trio code).

Where the cluster is, first match wins:

1. ``mgmtd=`` addresses given: those, with ``secret=`` or ``secret_file=`` (else
   ``$THREEFS_CLUSTER_SECRET``);
2. ``cluster_config=``: a cluster config TOML file (``mgmtd_addresses``, ``cluster_secret_file``;
   ``threefs up`` writes one as ``DIR/cluster.toml``);
3. ``$THREEFS_CLUSTER_CONFIG``;
4. ``$THREEFS_DATA_DIR/cluster.toml``, else ``~/.threefs/cluster.toml`` (``threefs up``'s default
   data directory).

How to authenticate, first match wins: ``secret=`` / ``secret_file=`` / ``token_file=`` (at most
one of them), the cluster config's ``token_file``, its ``cluster_secret_file``,
``$THREEFS_CLUSTER_SECRET``. With a user token (docs/security.md) the default caller is that
user's uid, gid and groups, as mgmtd has them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from client.config import ClusterConfig, load_cluster_config, read_secret_file
from client.fs import AsyncFileSystem, FileSystem, FileSystemConfig
from client.fs.errors import os_errors
from client.meta import MetaClient, MetaClientConfig, process_caller
from client.mgmtd import MgmtdClient
from client.routing import RoutingCache
from client.storage import StorageClient
from client.users import caller_of, read_token_file, who_am_i
from threefs.errors import Code, ThreeFSError
from threefs.rpc import RpcClient, UserToken
from threefs.wire.meta import Caller

__all__ = [
    "CLUSTER_CONFIG_ENV",
    "DATA_DIR_ENV",
    "SECRET_ENV",
    "connect",
    "default_cluster_config",
    "open_filesystem",
    "resolve_cluster",
]

CLUSTER_CONFIG_ENV = "THREEFS_CLUSTER_CONFIG"
DATA_DIR_ENV = "THREEFS_DATA_DIR"  # threefs up's data directory (default ~/.threefs)
SECRET_ENV = "THREEFS_CLUSTER_SECRET"


def default_cluster_config() -> Path:
    """``$THREEFS_CLUSTER_CONFIG``, else ``cluster.toml`` in ``$THREEFS_DATA_DIR`` or ``~/.threefs``."""
    explicit = os.environ.get(CLUSTER_CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    data_dir = os.environ.get(DATA_DIR_ENV) or str(Path.home() / ".threefs")
    return Path(data_dir).expanduser() / "cluster.toml"


def resolve_cluster(
    cluster_config: str | os.PathLike[str] | ClusterConfig | None = None,
    *,
    mgmtd: str | Sequence[str] | None = None,
    secret: str | bytes | None = None,
    secret_file: str | os.PathLike[str] | None = None,
    token_file: str | os.PathLike[str] | None = None,
) -> tuple[ClusterConfig, bytes | UserToken]:
    """The cluster config and the credential to connect with: the cluster secret or a user
    token (see the module docstring for the order). Raises ``ThreeFSError(CONFIG_INVALID)``
    naming what is missing, or the token file that is unreadable or not private."""
    given = [
        name
        for name, value in (("secret", secret), ("secret_file", secret_file), ("token_file", token_file))
        if value is not None
    ]
    if len(given) > 1:
        raise ThreeFSError(
            Code.CONFIG_INVALID, f"give one of secret=, secret_file=, token_file=, not {given}"
        )
    if mgmtd:
        addresses = [mgmtd] if isinstance(mgmtd, str) else list(mgmtd)
        config = ClusterConfig(mgmtd_addresses=addresses)
    elif isinstance(cluster_config, ClusterConfig):
        config = cluster_config
    else:
        path = Path(cluster_config) if cluster_config is not None else default_cluster_config()
        if cluster_config is None and not path.exists():
            raise ThreeFSError(
                Code.CONFIG_INVALID,
                f"no cluster given: pass cluster_config= or mgmtd=, set ${CLUSTER_CONFIG_ENV}, "
                f"or start a local cluster with 'threefs up' (looked for {path})",
            )
        config = load_cluster_config(path)
    if not config.mgmtd_addresses:
        raise ThreeFSError(Code.CONFIG_INVALID, "the cluster config lists no mgmtd_addresses")
    if secret is not None:
        return config, secret if isinstance(secret, bytes) else secret.encode()
    if secret_file is not None:
        return config, read_secret_file(secret_file)
    if token_file is not None:
        return config, read_token_file(token_file)
    if config.token_file:
        return config, read_token_file(config.token_file)
    if config.cluster_secret_file:
        return config, read_secret_file(config.cluster_secret_file)
    if os.environ.get(SECRET_ENV):
        return config, os.environ[SECRET_ENV].encode()
    raise ThreeFSError(
        Code.CONFIG_INVALID,
        f"no cluster secret or token: pass secret=, secret_file= or token_file=, set cluster_secret_file "
        f"or token_file in the cluster config, or ${SECRET_ENV}",
    )


@asynccontextmanager
async def open_filesystem(
    cluster_config: str | os.PathLike[str] | ClusterConfig | None = None,
    *,
    mgmtd: str | Sequence[str] | None = None,
    secret: str | bytes | None = None,
    secret_file: str | os.PathLike[str] | None = None,
    token_file: str | os.PathLike[str] | None = None,
    caller: Caller | None = None,
    admin: bool = False,
    meta: Sequence[str] = (),
    config: FileSystemConfig | None = None,
    meta_config: MetaClientConfig | None = None,
) -> AsyncIterator[AsyncFileSystem]:
    """``async with open_filesystem(...) as fs``: an ``AsyncFileSystem`` connected to the
    cluster (routing info fetched from mgmtd before it is yielded); leaving the block closes
    every connection. ``caller``: the identity meta checks permissions with (default this
    process's uid/gid/groups, or with a user token that user's; ``admin=True`` makes it trusted,
    so uid 0 is root, which with a token needs an admin user); ``meta``:
    fixed meta server addresses (default: the ACTIVE meta nodes routing info lists);
    ``config``: buffering and paging. Raises ``OSError`` when the cluster cannot be reached
    and ``ThreeFSError(CONFIG_INVALID)`` for a bad configuration."""
    cluster, key = resolve_cluster(
        cluster_config, mgmtd=mgmtd, secret=secret, secret_file=secret_file, token_file=token_file
    )
    async with RpcClient(key) as rpc:
        mgmtd_client = MgmtdClient(cluster.mgmtd_addresses, rpc=rpc, config=cluster.mgmtd_client)
        routing = RoutingCache(mgmtd_client)
        with os_errors():
            await routing.refresh()
            if caller is None and isinstance(key, UserToken):
                user = await who_am_i(mgmtd_client)
                caller = process_caller(admin=admin) if user is None else caller_of(user, admin=admin)
        if caller is None:
            caller = process_caller(admin=admin)
        meta_client = MetaClient(rpc, routing=routing, addresses=meta, caller=caller, config=meta_config)
        storage = StorageClient(rpc, routing, cluster.storage_client)
        yield AsyncFileSystem(meta_client, storage, config)


def connect(
    cluster_config: str | os.PathLike[str] | ClusterConfig | None = None,
    *,
    mgmtd: str | Sequence[str] | None = None,
    secret: str | bytes | None = None,
    secret_file: str | os.PathLike[str] | None = None,
    token_file: str | os.PathLike[str] | None = None,
    caller: Caller | None = None,
    admin: bool = False,
    meta: Sequence[str] = (),
    config: FileSystemConfig | None = None,
    meta_config: MetaClientConfig | None = None,
) -> FileSystem:
    """Connect to a cluster and return the synchronous ``FileSystem`` (arguments as for
    ``open_filesystem``). Close it (``with threefs.connect(...) as fs:``) to end its loop thread
    and connections."""
    # Resolve here too, so a configuration error is raised in the caller's thread at once.
    resolve_cluster(
        cluster_config, mgmtd=mgmtd, secret=secret, secret_file=secret_file, token_file=token_file
    )

    def opener():  # type: ignore[no-untyped-def]
        return open_filesystem(
            cluster_config,
            mgmtd=mgmtd,
            secret=secret,
            secret_file=secret_file,
            token_file=token_file,
            caller=caller,
            admin=admin,
            meta=meta,
            config=config,
            meta_config=meta_config,
        )

    return FileSystem(opener)
