"""Shared pieces of the peer scripts: FUSE daemons run in the foreground, processes found and ended
by id, what listens where, and the ``run [-- COMMAND]`` command line of every peer script."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MOUNT_TIMEOUT_S = 60.0


# ----------------------------------------------------------------------------- mounts


def wait_mounted(
    path: Path, process: subprocess.Popen[bytes] | None, log: Path, timeout: float = MOUNT_TIMEOUT_S
) -> None:
    """Wait until ``path`` is a mount point; kill ``process`` and raise (with the log's tail) if it
    exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not os.path.ismount(path):
        if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
            if process is not None:
                process.kill()
            tail = log.read_bytes()[-3000:].decode(errors="replace") if log.exists() else ""
            raise RuntimeError(f"{path} did not mount:\n{tail}")
        time.sleep(0.05)


def unmount(path: Path) -> None:
    """Unmount ``path`` if it is mounted: a plain unmount, else a lazy one (busy or dead daemon)."""
    if not os.path.ismount(path):
        return
    if subprocess.run(["umount", str(path)], check=False, capture_output=True).returncode == 0:
        return
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


@contextmanager
def fuse_mount(command: list[str], mountpoint: Path, log: Path) -> Iterator[Path]:
    """Run a FUSE daemon in the foreground; yield once ``mountpoint`` is mounted; always unmount."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, cwd=ROOT
        )
    try:
        wait_mounted(mountpoint, process, log)
        yield mountpoint
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False, capture_output=True)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def mounts_matching(text: str) -> list[tuple[str, Path]]:
    """(file system type, mount point) of every mount whose mount point contains ``text``."""
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 3 and text in fields[1]:
            found.append((fields[2], Path(fields[1].replace("\\040", " "))))
    return found


# ----------------------------------------------------------------------------- processes


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pids_mentioning(text: str) -> list[int]:
    """Ids of the live processes (not this one) whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and alive(int(entry.name)):
            if text in cmdline(int(entry.name)):
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] not in ("Z", "X")


def end_processes(pids: Iterable[int], timeout: float = 10.0) -> list[int]:
    """SIGTERM each process by id, SIGKILL those still running after ``timeout``; returns those
    that were running."""
    pids = [pid for pid in pids if alive(pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not any(alive(pid) for pid in pids):
            break
    return pids


_SS_PID = re.compile(r"pid=(\d+)")


def listeners(pids: Iterable[int]) -> list[str]:
    """``"protocol address:port name(pid)"`` for each TCP or UDP socket these processes listen on
    (from ``ss -H -ltunp``)."""
    wanted = set(pids)
    result = subprocess.run(["ss", "-H", "-ltunp"], capture_output=True, text=True, check=False)
    found = []
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) < 7:
            continue
        for match in _SS_PID.finditer(fields[6]):
            if int(match.group(1)) in wanted:
                name = re.search(r'"([^"]+)"', fields[6])
                label = name.group(1) if name else "?"
                found.append(f"{fields[0]} {fields[4]} {label}({match.group(1)})")
                break
    return sorted(found)


def loopback_only(addresses: Iterable[str]) -> list[str]:
    """The entries of ``listeners()`` whose address is not a loopback one."""
    outside = []
    for entry in addresses:
        address = entry.split()[1].rsplit(":", 1)[0].strip("[]")
        if not (address.startswith("127.") or address == "::1"):
            outside.append(entry)
    return outside


# ----------------------------------------------------------------------------- script CLI


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_cli(
    description: str,
    start: Callable[[Path], AbstractContextManager[Path]],
    argv: list[str] | None = None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """``run [--dir DIR] [-- COMMAND ...]``: start the system under a temporary directory, print
    its mount point, run COMMAND there (``$PEER_MOUNT`` names it) or wait for Ctrl-C/SIGTERM,
    then stop and clean everything. ``extra`` adds subcommands of its own to the parser."""
    parser = argparse.ArgumentParser(description=description)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start, run COMMAND (or wait for Ctrl-C), stop and clean")
    run.add_argument("--dir", default="", help="parent of the temporary directory (default: /tmp)")
    run.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND ARGS... run in the mount")
    if extra is not None:
        extra(commands)
    args = parser.parse_args(argv)
    if args.command != "run":
        return int(args.func(args))
    if os.geteuid() != 0:
        print("mounting needs root", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_interrupt)
    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    with tempfile.TemporaryDirectory(prefix="threefs-peer-", dir=args.dir or None) as tmp:
        with start(Path(tmp)) as mountpoint:
            print(f"mounted at {mountpoint}", flush=True)
            if command:
                env = {**os.environ, "PEER_MOUNT": str(mountpoint)}
                return subprocess.run(command, cwd=mountpoint, env=env, check=False).returncode
            print("Ctrl-C (or SIGTERM) stops it and cleans up", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                print("stopping", flush=True)
    return 0
