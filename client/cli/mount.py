"""``threefs mount`` / ``threefs umount``, and ``mount.threefs`` for ``mount -t threefs`` and
/etc/fstab (docs/fuse.md).

``threefs mount MOUNTPOINT [--cluster-config FILE | --mgmtd HOST:PORT --secret-file FILE]
[--token-file FILE] [-f] [-o OPTIONS] [--log-file FILE]``: with a user token (``--token-file`` or
the cluster config's ``token_file``) the mount acts as that user at meta and storage; serving
local users other than the token's uid needs an ``impersonate`` token (docs/security.md).
Without ``-f`` the daemon is started in the background (a new session, logs to ``--log-file``)
and the command returns once the mount is usable, or fails with the daemon's error; with ``-f``
it serves in the foreground until unmounted.

The daemon lives in ``client.fuse``, which nothing may import (a leaf, DESIGN.md section 1): it is
loaded by name here, at run time, in the foreground process only.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from client.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UserError
from client.connect import resolve_cluster
from threefs.errors import Code, ThreeFSError
from threefs.mounts import is_mount_point

__all__ = ["fstab_main", "register"]

READY = b"ready\n"
READY_TIMEOUT_S = 60.0


def register(groups: Any) -> None:
    mount = groups.add_parser(
        "mount",
        help="mount the file system with FUSE",
        description="Mount a threefs cluster on MOUNTPOINT (see docs/fuse.md for -o options).",
    )
    mount.add_argument("mountpoint")
    mount.add_argument("--cluster-config", help="cluster config file (threefs up writes DIR/cluster.toml)")
    mount.add_argument("--mgmtd", action="append", help="mgmtd HOST:PORT (instead of a config file)")
    mount.add_argument("--secret-file", help="file holding the cluster secret (with --mgmtd)")
    mount.add_argument("--token-file", help="authenticate as the user whose token FILE holds (mode 0600)")
    mount.add_argument("-f", "--foreground", action="store_true", help="serve in the foreground")
    mount.add_argument(
        "-o", dest="options", action="append", default=[], help="mount options, comma separated"
    )
    mount.add_argument("--log-file", help="daemon log (default without -f: /tmp/threefs-mount-<dir>.log)")
    mount.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    mount.set_defaults(run=run_mount_command)

    umount = groups.add_parser("umount", help="unmount a threefs mount", description="Unmount MOUNTPOINT.")
    umount.add_argument("mountpoint")
    umount.add_argument("-z", "--lazy", action="store_true", help="detach now, clean up when not busy")
    umount.set_defaults(run=run_umount_command)


def _default_log_file(mountpoint: str) -> str:
    name = os.path.abspath(mountpoint).strip("/").replace("/", "-") or "root"
    return f"/tmp/threefs-mount-{name}.log"


def _log_to_file(log_file: str, verbose: int) -> None:
    """The background daemon logs to ``log_file`` (info; debug with -vv)."""
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)


def run_mount_command(args: argparse.Namespace) -> int:
    daemon = importlib.import_module("client.fuse.daemon")
    options_module = importlib.import_module("client.fuse.options")
    options = options_module.parse_mount_options(args.options)
    if (
        args.mgmtd
        and not args.secret_file
        and not args.token_file
        and not os.environ.get("THREEFS_CLUSTER_SECRET")
    ):
        raise UserError(
            "--mgmtd needs --secret-file or --token-file (or $THREEFS_CLUSTER_SECRET)", EXIT_USAGE
        )
    cluster, secret = resolve_cluster(
        args.cluster_config, mgmtd=args.mgmtd, secret_file=args.secret_file, token_file=args.token_file
    )
    if not args.foreground:
        return _start_background(args)
    if args.log_file:
        _log_to_file(args.log_file, args.verbose)
    ready = None
    if args.ready_fd is not None:
        fd = args.ready_fd

        def ready() -> None:
            os.write(fd, READY)
            os.close(fd)

    return daemon.run_mount(args.mountpoint, cluster=cluster, secret=secret, options=options, ready=ready)


def _start_background(args: argparse.Namespace) -> int:
    """Start ``threefs mount -f`` detached and wait until it says the mount is ready."""
    mountpoint = os.path.abspath(args.mountpoint)
    log_file = args.log_file or _default_log_file(mountpoint)
    command = [sys.executable, "-m", "client.cli"]
    command += ["-v"] * max(args.verbose, 1)
    command += ["mount", mountpoint, "-f", "--log-file", log_file]
    if args.cluster_config:
        command += ["--cluster-config", os.path.abspath(args.cluster_config)]
    for address in args.mgmtd or ():
        command += ["--mgmtd", address]
    if args.secret_file:
        command += ["--secret-file", os.path.abspath(args.secret_file)]
    if args.token_file:
        command += ["--token-file", os.path.abspath(args.token_file)]
    for option in args.options:
        command += ["-o", option]
    read_end, write_end = os.pipe()
    command += ["--ready-fd", str(write_end)]
    with open(log_file, "ab") as log:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(write_end,),
            start_new_session=True,
            cwd="/",
        )
    os.close(write_end)
    try:
        answer = _read_all(read_end)
    finally:
        os.close(read_end)
    if answer.startswith(READY):
        print(f"threefs mounted on {mountpoint} (daemon pid {child.pid}, log {log_file})")
        return EXIT_OK
    status = child.wait()
    tail = _tail(log_file)
    raise UserError(f"mount failed (daemon exit status {status}); log {log_file}:\n{tail}", EXIT_FAILED)


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        data = os.read(fd, 4096)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _tail(path: str, limit: int = 2000) -> str:
    try:
        return Path(path).read_bytes()[-limit:].decode(errors="replace").rstrip()
    except OSError:
        return "(no log)"


def run_umount_command(args: argparse.Namespace) -> int:
    mountpoint = os.path.abspath(args.mountpoint)
    if not is_mount_point(mountpoint):
        raise ThreeFSError(Code.INVALID_ARG, f"{mountpoint} is not mounted")
    if shutil.which("fusermount3"):
        command = ["fusermount3", "-u"] + (["-z"] if args.lazy else []) + [mountpoint]
    else:
        command = ["umount"] + (["-l"] if args.lazy else []) + [mountpoint]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise UserError(f"unmounting {mountpoint}: {result.stderr.strip() or result.returncode}", EXIT_FAILED)
    return EXIT_OK


def fstab_main(argv: Sequence[str] | None = None) -> int:
    """``mount.threefs CONFIGFILE MOUNTPOINT [-o OPTIONS] [-n] [-s] [-f] [-v]``: what ``mount -t
    threefs`` runs; becomes ``threefs mount MOUNTPOINT --cluster-config CONFIGFILE -o OPTIONS``."""
    from client.cli import main

    parser = argparse.ArgumentParser(prog="mount.threefs")
    parser.add_argument("config")
    parser.add_argument("mountpoint")
    parser.add_argument("-o", dest="options", action="append", default=[])
    parser.add_argument("-n", action="store_true", help="(ignored: no mtab)")
    parser.add_argument("-s", action="store_true", help="(ignored: sloppy)")
    parser.add_argument("-f", dest="fake", action="store_true", help="fake: do everything but mount")
    parser.add_argument("-v", dest="verbose", action="store_true")
    parser.add_argument("-t", dest="type", help="(ignored: threefs)")
    args = parser.parse_args(argv)
    if args.fake:
        return EXIT_OK
    command = ["-v"] if args.verbose else []
    command += ["mount", args.mountpoint, "--cluster-config", args.config]
    for option in args.options:
        command += ["-o", option]
    return main(command)
