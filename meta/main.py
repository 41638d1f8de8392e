"""``threefs-meta --config FILE``: run one meta server until SIGTERM or SIGINT.

Stdout gets one line once the RPC server listens, ``meta <node_id> listening on HOST:PORT``
(scripts and tests wait for it); logs go to stderr, one ``key=value`` line per event. A bad
configuration or secret, or a KV engine that cannot be opened, prints one line to stderr and
exits 2; a failure while running exits 1.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import trio

from meta.app import MetaApp
from meta.config import MetaConfig, load_cluster_secret, load_meta_config
from threefs.config import config_to_dict
from threefs.errors import Code, ThreeFSError
from threefs.kv import open_engine
from threefs.service import configure_logging, dump_toml

__all__ = ["main"]

log = logging.getLogger("meta")

EXIT_USAGE = 2
EXIT_FAILED = 1


async def _serve(config: MetaConfig, secret: bytes) -> None:
    engine = open_engine(config.kv_url)
    try:
        app = MetaApp(config, secret, engine)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(app.run)
                print(f"meta {config.node_id} listening on {app.address}", flush=True)
                async for signum in signals:
                    log.info("got %s: stopping", signal.Signals(signum).name)
                    nursery.cancel_scope.cancel()
                    break
    finally:
        engine.close()
    log.info("stopped")


def _run_unwrapped(config: MetaConfig, secret: bytes) -> None:
    """``trio.run(_serve, ...)``, raising a lone error from inside nurseries as itself."""
    try:
        trio.run(_serve, config, secret)
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, ThreeFSError | OSError):
            raise leaf from None
        raise


def main(argv: list[str] | None = None) -> int:
    """Run a meta server; returns the exit code (0 after a clean stop by signal)."""
    parser = argparse.ArgumentParser(prog="threefs-meta", description="threefs meta server")
    parser.add_argument("--config", metavar="FILE", required=True, help="TOML configuration")
    parser.add_argument(
        "--dump-config", action="store_true", help="print the effective configuration and exit"
    )
    args = parser.parse_args(argv)
    try:
        config = load_meta_config(args.config)
        if args.dump_config:
            sys.stdout.write(dump_toml(config_to_dict(config)))
            return 0
        secret = load_cluster_secret(config)
    except ThreeFSError as exc:
        print(f"threefs-meta: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(config.log_level)
    try:
        _run_unwrapped(config, secret)
    except ThreeFSError as exc:
        print(f"threefs-meta: {exc.message}", file=sys.stderr)
        bad_setup = exc.code in (Code.CONFIG_INVALID, Code.INVALID_ARG, Code.KV_UNAVAILABLE)
        return EXIT_USAGE if bad_setup else EXIT_FAILED
    except OSError as exc:  # e.g. the listen port is in use
        print(f"threefs-meta: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
