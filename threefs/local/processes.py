"""Detached processes of a local cluster: started in their own session with stdout/stderr in
files, tracked by pid files, found alive or dead later by another ``threefs`` invocation.

A pid file holds the pid; the process counts as running only while ``/proc/PID`` exists, is not
a zombie, and its command line still names the process's config file (so a stale pid file whose
pid was reused by an unrelated process reads as "not running").
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ManagedProcess",
    "free_port",
    "is_alive",
    "port_in_use",
    "stop_processes",
]

LOG_TAIL_BYTES = 3000
_STOP_POLL_S = 0.05
_START_MARKER = "--- threefs up: starting at "


@dataclass(frozen=True)
class ManagedProcess:
    """One process of the cluster: its name (``mgmtd``, ``storage-11``, ``meta-1001``,
    ``mount``), its command line, and the files it is known by. ``marker`` is a string its
    command line contains (the config file, or the mount point)."""

    name: str
    argv: list[str]
    marker: str
    pid_path: Path
    out_path: Path
    log_path: Path

    def pid(self) -> int | None:
        """The pid in the pid file, or ``None`` (no file or garbage in it)."""
        try:
            return int(self.pid_path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running_pid(self) -> int | None:
        """The pid when the process is running (see the module docstring), else ``None``."""
        pid = self.pid()
        return pid if pid is not None and is_alive(pid, self.marker) else None

    def start(self, cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start the process detached (new session, stdin from /dev/null, stdout truncated into
        ``out_path``, stderr appended to ``log_path``) and write its pid file. The caller may
        poll the returned ``Popen`` (right after the fork the child's command line is still the
        caller's, so ``running_pid`` cannot recognise it yet)."""
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        with self.out_path.open("wb") as out, self.log_path.open("ab") as log:
            log.write(f"{_START_MARKER}{time.strftime('%Y-%m-%d %H:%M:%S')} {self.name}\n".encode())
            log.flush()
            process = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        self.pid_path.write_text(f"{process.pid}\n")
        return process

    def log_tail(self) -> str:
        """The end of the process's stderr log since its last start (else of its stdout)."""
        for path in (self.log_path, self.out_path):
            try:
                text = path.read_bytes()[-LOG_TAIL_BYTES:].decode(errors="replace")
            except OSError:
                continue
            if _START_MARKER in text:
                text = text.rpartition(_START_MARKER)[2].partition("\n")[2]
            if text.strip():
                return text
        return "(empty log)"


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status when it is our own child (else a zombie lingers)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def is_alive(pid: int, marker: str = "") -> bool:
    """Whether ``pid`` runs (not a zombie) and, when ``marker`` is given, its command line
    contains it."""
    _reap(pid)
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[0] if ")" in stat else "?"
    if state in ("Z", "X"):
        return False
    return not marker or marker in cmdline


def port_in_use(host: str, port: int) -> bool:
    """Whether binding ``host:port`` fails because something else holds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def stop_processes(processes: list[ManagedProcess], timeout_s: float) -> list[str]:
    """SIGTERM every running process of ``processes``, wait up to ``timeout_s`` for all of them,
    SIGKILL the ones still alive; remove every pid file. Returns the names of the processes that
    were running."""
    running: dict[str, tuple[int, ManagedProcess]] = {}
    for process in processes:
        pid = process.running_pid()
        if pid is not None:
            running[process.name] = (pid, process)
            _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(is_alive(pid) for pid, _ in running.values()):
        time.sleep(_STOP_POLL_S)
    for pid, _ in running.values():
        if is_alive(pid):
            _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(is_alive(pid) for pid, _ in running.values()):
        time.sleep(_STOP_POLL_S)
    for process in processes:
        process.pid_path.unlink(missing_ok=True)
    return list(running)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
