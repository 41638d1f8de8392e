"""The ``main()`` of a server process, written once: ``--config FILE`` / ``--dump-config``,
logging, running until SIGTERM or SIGINT, one line to stderr and an exit code on failure.

``node_main`` loads the config and the cluster secret (exit 2 on failure: a usage problem),
sets up logging (``threefs.service.logs``; every line names the node id and role), then runs
``serve(config, secret)`` under ``trio.run``; an error raised there exits 2 when its code is one
of ``usage_codes`` (a bad setup found at start), else 1; an ``OSError`` (e.g. the listen port is
in use) exits 1. ``serve_until_signal`` is the body most ``serve`` functions share: start the
app, announce it on stdout, stop at the first signal.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

import trio

from threefs.config import config_to_dict
from threefs.errors import Code, ThreeFSError
from threefs.service.logs import configure_logging
from threefs.service.toml_dump import dump_toml

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "node_main", "serve_until_signal"]

EXIT_USAGE = 2
EXIT_FAILED = 1

C = TypeVar("C")


async def serve_until_signal(run: Any, announce: Callable[[], str], log: logging.Logger) -> None:
    """``await nursery.start(run)``, print ``announce()`` (flushed) once it listens, then run
    until SIGTERM or SIGINT cancels it."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(run)
            print(announce(), flush=True)
            async for signum in signals:
                log.info("got %s: stopping", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
    log.info("stopped")


def _run_unwrapped(serve: Callable[[C, bytes], Awaitable[None]], config: C, secret: bytes) -> None:
    """``trio.run(serve, ...)``, raising a lone error from inside nurseries as itself."""
    try:
        trio.run(serve, config, secret)
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, ThreeFSError | OSError):
            raise leaf from None
        raise


def node_main(
    argv: list[str] | None,
    *,
    prog: str,
    description: str,
    load_config: Callable[[str], C],
    load_secret: Callable[[C], bytes],
    serve: Callable[[C, bytes], Awaitable[None]],
    usage_codes: Collection[Code] = (Code.CONFIG_INVALID,),
    role: str = "",
) -> int:
    """Parse ``argv``, load, run; returns the exit code (0 after a clean stop by signal).

    Every log line carries ``node=<config.node_id> role=<role>``; ``role`` defaults to ``prog``
    without its ``threefs-`` prefix (``threefs-storage`` -> ``storage``)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", metavar="FILE", required=True, help="TOML configuration")
    parser.add_argument(
        "--dump-config", action="store_true", help="print the effective configuration and exit"
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        if args.dump_config:
            sys.stdout.write(dump_toml(config_to_dict(config)))
            return 0
        secret = load_secret(config)
    except ThreeFSError as exc:
        print(f"{prog}: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(
        config.log_level,  # type: ignore[attr-defined]
        node_id=getattr(config, "node_id", None),
        role=role or prog.removeprefix("threefs-"),
    )
    try:
        _run_unwrapped(serve, config, secret)
    except ThreeFSError as exc:
        print(f"{prog}: {exc.message}", file=sys.stderr)
        return EXIT_USAGE if exc.code in usage_codes else EXIT_FAILED
    except OSError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0
