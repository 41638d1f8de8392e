"""``threefs-meta --config FILE``: run one meta server until SIGTERM or SIGINT.

Stdout gets one line once the RPC server listens, ``meta <node_id> listening on HOST:PORT``
(scripts and tests wait for it); logs go to stderr, one ``key=value`` line per event. A bad
configuration or secret, or a KV engine that cannot be opened, prints one line to stderr and
exits 2; a failure while running exits 1.
"""

from __future__ import annotations

import logging
import sys

from meta.app import MetaApp
from meta.config import MetaConfig, load_cluster_secret, load_meta_config
from threefs.errors import Code
from threefs.kv import open_engine
from threefs.service.launch import node_main, serve_until_signal

__all__ = ["main"]

log = logging.getLogger("meta")


async def _serve(config: MetaConfig, secret: bytes) -> None:
    engine = open_engine(config.kv_url)
    try:
        app = MetaApp(config, secret, engine)
        await serve_until_signal(app.run, lambda: f"meta {config.node_id} listening on {app.address}", log)
    finally:
        engine.close()


def main(argv: list[str] | None = None) -> int:
    """Run a meta server; returns the exit code (0 after a clean stop by signal)."""
    return node_main(
        argv,
        prog="threefs-meta",
        description="threefs meta server",
        load_config=load_meta_config,
        load_secret=load_cluster_secret,
        serve=_serve,
        usage_codes=(Code.CONFIG_INVALID, Code.INVALID_ARG, Code.KV_UNAVAILABLE),
    )


if __name__ == "__main__":
    sys.exit(main())
