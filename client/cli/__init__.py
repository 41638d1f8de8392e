"""client.cli: the `threefs` command (a leaf: nothing imports it).

``main(argv)`` parses the arguments, runs one command and returns the exit status (see
docs/cli.md): 0 success, 1 the operation failed with a ``ThreeFSError``, 2 bad usage or
configuration, 3 the cluster could not be reached, 130 interrupted. Failures print one line
``error: CODE_NAME: message`` on stderr, never a traceback. Each command group has its module
(``admin``) with a ``register(subparsers)`` function.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from client.cli import admin, cluster, mount
from client.cli.common import EXIT_INTERRUPTED, EXIT_USAGE, Parser, UserError, exit_code_for
from threefs import __version__
from threefs.errors import ThreeFSError

__all__ = ["build_parser", "main"]


def build_parser() -> Parser:
    """The ``threefs`` argument parser with every command group."""
    parser = Parser(
        prog="threefs",
        description="threefs: a parallel file system (admin and tools).",
        epilog="exit status: 0 success, 1 operation failed, 2 usage or configuration error, "
        "3 cluster unreachable, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"threefs {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-v: info, -vv: debug) on stderr"
    )
    groups = parser.add_subparsers(dest="group", metavar="GROUP", required=True, parser_class=Parser)
    admin.register(groups)
    mount.register(groups)
    cluster.register(groups)
    return parser


def _fail(message: str, exit_code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``threefs`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UserError as exc:
        return _fail(str(exc), exc.exit_code)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    levels = {0: logging.ERROR, 1: logging.INFO}
    logging.basicConfig(
        level=levels.get(args.verbose, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.run(args)
    except UserError as exc:
        return _fail(str(exc), exc.exit_code)
    except ThreeFSError as exc:
        return _fail(f"{exc.code.name}: {exc.message}", exit_code_for(exc))
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`threefs admin list-chains | head`): not an error. Point stdout
        # at /dev/null so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0


if __name__ == "__main__":
    sys.exit(main())
