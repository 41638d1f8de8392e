"""``threefs-storage --config FILE``: run one storage node until SIGTERM or SIGINT.

Stdout gets one line once the RPC server listens, ``storage <node_id> listening on HOST:PORT``
(scripts and tests wait for it); logs go to stderr, one ``key=value`` line per event. A bad
configuration or secret, or a target directory that belongs to another target or cluster,
prints one line to stderr and exits 2; a failure while running exits 1.
"""

from __future__ import annotations

import logging
import sys

from storage.app import StorageApp
from storage.config import StorageConfig, load_cluster_secret, load_storage_config
from threefs.service.launch import node_main, serve_until_signal

__all__ = ["main"]

log = logging.getLogger("storage")


async def _serve(config: StorageConfig, secret: bytes) -> None:
    app = StorageApp(config, secret)
    await serve_until_signal(app.run, lambda: f"storage {config.node_id} listening on {app.address}", log)


def main(argv: list[str] | None = None) -> int:
    """Run a storage node; returns the exit code (0 after a clean stop by signal)."""
    return node_main(
        argv,
        prog="threefs-storage",
        description="threefs storage node",
        load_config=load_storage_config,
        load_secret=load_cluster_secret,
        serve=_serve,
    )


if __name__ == "__main__":
    sys.exit(main())
