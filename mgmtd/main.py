"""``threefs-mgmtd --config FILE``: run one mgmtd process until SIGTERM or SIGINT.

Stdout gets one line once the RPC server listens, ``mgmtd <node_id> listening on HOST:PORT``
(scripts and tests wait for it); logs go to stderr, one ``key=value`` line per event. A bad
configuration, secret or KV URL prints one line to stderr and exits 2; a failure while running
exits 1. ``--dump-config`` prints the effective configuration as TOML and exits.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import trio

from mgmtd.app import MgmtdApp
from mgmtd.config import MgmtdConfig, load_cluster_secret, load_mgmtd_config
from mgmtd.store import read_cluster
from threefs.config import config_to_dict
from threefs.errors import Code, ThreeFSError
from threefs.kv import Engine, open_engine, run_transaction
from threefs.rpc import format_address
from threefs.service import configure_logging, dump_toml
from threefs.service.launch import EXIT_FAILED, EXIT_USAGE, serve_until_signal

__all__ = ["main"]

log = logging.getLogger("mgmtd")


def _open_kv(url: str) -> Engine:
    """``open_engine(url)``, creating a sqlite file's directory first."""
    parts = urlsplit(url)
    if parts.scheme.lower() == "sqlite":
        path = Path(unquote(parts.netloc + parts.path))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ThreeFSError(
                Code.CONFIG_INVALID, f"key 'kv_url': cannot create {path.parent}: {exc.strerror}"
            ) from None
    return open_engine(url)


def _check_cluster(engine: Engine, cluster_id: str) -> None:
    """Refuse a KV store that belongs to another cluster before listening."""
    record = run_transaction(engine, read_cluster, read_only=True)
    if record is not None and record.cluster_id != cluster_id:
        raise ThreeFSError(
            Code.CONFIG_INVALID,
            f"key 'cluster_id': the KV store belongs to cluster {record.cluster_id!r}, not {cluster_id!r}",
        )


async def _serve(config: MgmtdConfig, secret: bytes, engine: Engine) -> None:
    app = MgmtdApp(config, secret, engine)
    await serve_until_signal(
        app.run,
        lambda: f"mgmtd {config.node_id} listening on {format_address((config.listen_host, app.port))}",
        log,
    )


def main(argv: list[str] | None = None) -> int:
    """Run a mgmtd; returns the exit code (0 after a clean stop by signal)."""
    parser = argparse.ArgumentParser(prog="threefs-mgmtd", description="threefs cluster manager (mgmtd)")
    parser.add_argument("--config", metavar="FILE", help="TOML configuration (default: built-in defaults)")
    parser.add_argument(
        "--dump-config", action="store_true", help="print the effective configuration and exit"
    )
    args = parser.parse_args(argv)
    try:
        config = load_mgmtd_config(args.config)
    except ThreeFSError as exc:
        print(f"threefs-mgmtd: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    if args.dump_config:
        sys.stdout.write(dump_toml(config_to_dict(config)))
        return 0
    configure_logging(config.log_level, node_id=config.node_id, role="mgmtd")
    try:
        secret = load_cluster_secret(config)
        engine = _open_kv(config.kv_url)
    except ThreeFSError as exc:
        print(f"threefs-mgmtd: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    try:
        _check_cluster(engine, config.cluster_id)
        trio.run(_serve, config, secret, engine)
    except ThreeFSError as exc:
        print(f"threefs-mgmtd: {exc.message}", file=sys.stderr)
        return EXIT_USAGE if exc.code == Code.CONFIG_INVALID else EXIT_FAILED
    except OSError as exc:  # e.g. the listen port is in use
        print(f"threefs-mgmtd: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
