"""GlusterFS as a peer: a replica-3 volume of three bricks on this machine, FUSE-mounted, reachable
on loopback only, started from nothing and removed afterwards.

Debian 12's GlusterFS 10.3 (``glusterfs-server``, ``glusterfs-client``), installed on demand by
``install()`` (``apt-get install``, idempotent; a ``policy-rc.d`` keeps the package from starting
a system glusterd). No systemd: this module starts its own ``glusterd`` in the foreground
(``-N``) with a volfile of its own, so all of its state lives in one temporary directory
``threefs-peer-glusterfs-*``:

- ``option working-directory``: volume definitions (instead of ``/var/lib/glusterd``);
- ``option run-directory`` / ``logging-directory`` / ``glusterd-sockfile``: pid files, every
  log (glusterd, bricks, self-heal daemon, CLI, FUSE client) and the CLI socket (instead of
  ``/var/run/gluster``, ``/var/log/glusterfs`` and ``/var/run/glusterd.socket``);
- ``option transport.socket.bind-address 127.0.0.1``: glusterd listens on 127.0.0.1:24007 and
  starts every brick with ``--xlator-option transport.socket.bind-address=127.0.0.1``.

What still lands outside (removed on exit when it was not there before): the bricks' unix
sockets in ``/var/run/gluster/*.socket`` (a fixed path), and ``geo-replication/`` and
``ss_brick/`` that glusterd creates in ``/var/lib/glusterd`` at its first start.

Bricks must be named by a host name, not ``localhost`` or ``127.0.0.1`` (the CLI refuses those),
and the name must resolve to loopback since nothing listens elsewhere. The machine's host name
is used when it resolves to loopback addresses only (Debian's ``/etc/hosts`` maps it to
127.0.1.1 or 127.0.0.1); otherwise a line ``127.0.0.1 threefs-glusterfs-peer`` is added to
``/etc/hosts`` for the run and removed afterwards.

What listens while it runs (``ss -ltunp``, checked by ``glusterfs_mount``, which refuses to go on
if anything of it listens beyond loopback): glusterd on 127.0.0.1:24007 (TCP), and each of the
3 brick processes (``glusterfsd``) on 127.0.0.1 at a port glusterd picks in 49152-60999. The
self-heal daemon and the FUSE client (``glusterfs``) only connect. No UDP.

Volume ``threefs_bench``, default volume options, ``mount -t glusterfs HOST:/threefs_bench``
with default FUSE options (attribute and entry timeouts 1 s). On exit: unmount, ``volume stop``
and ``volume delete``, glusterd stopped, any process still naming the directory (bricks,
self-heal daemon) ended by id, the directory removed. Before starting, the leftovers of an
earlier run that was killed (a mount, processes or directories named ``threefs-peer-glusterfs-*``,
brick sockets nobody listens on, what its glusterd created in ``/var/lib/glusterd``, the
``/etc/hosts`` line) are removed the same way; a glusterd
not started by this module makes it stop with an error instead (only one can listen on 24007).

As a script, from the repository root as root::

    .venv/bin/python bench/peers/glusterfs.py install              # the Debian packages
    .venv/bin/python bench/peers/glusterfs.py run                  # mount, wait for Ctrl-C
    .venv/bin/python bench/peers/glusterfs.py run -- fio ...       # run a command in the mount
    .venv/bin/python bench/peers/glusterfs.py clean                # leftovers of a killed run
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.peers.common import (
    alive,
    cmdline,
    end_processes,
    listeners,
    loopback_only,
    mounts_matching,
    pids_mentioning,
    run_cli,
    unmount,
    wait_mounted,
)

PACKAGES = ("glusterfs-server", "glusterfs-client")
TOOLS = ("glusterd", "gluster", "mount.glusterfs")
VOLUME = "threefs_bench"
MARKER = "threefs-peer-glusterfs-"
GLUSTERD_PORT = 24007
HOSTS_ALIAS = "threefs-glusterfs-peer"
HOSTS_COMMENT = "# added by bench/peers/glusterfs.py"
HOSTS_FILE = Path("/etc/hosts")
RUN_DIR = Path("/var/run/gluster")
STATE_DIR = Path("/var/lib/glusterd")
STATE_LEFTOVERS = ("geo-replication", "ss_brick")  # what glusterd creates there whatever its volfile
START_TIMEOUT_S = 60.0

GLUSTERD_VOL = """\
volume management
    type mgmt/glusterd
    option working-directory {state}/glusterd
    option run-directory {state}/run
    option logging-directory {state}/log
    option glusterd-sockfile {state}/glusterd.socket
    option transport-type socket
    option transport.socket.bind-address 127.0.0.1
    option transport.socket.listen-port {port}
    option transport.socket.keepalive-time 10
    option transport.socket.keepalive-interval 2
    option transport.socket.read-fail-log off
    option ping-timeout 0
    option event-threads 1
    option max-port 60999
end-volume
"""


# ----------------------------------------------------------------------------- installing


def missing_packages() -> list[str]:
    missing = []
    for package in PACKAGES:
        status = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
        )
        if "install ok installed" not in status.stdout:
            missing.append(package)
    return missing


def install() -> None:
    """Install the Debian packages if any is missing (root); no service gets started."""
    missing = missing_packages()
    if not missing:
        return
    print(f"glusterfs: installing {' '.join(missing)}", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    if own_policy:  # invoke-rc.d / deb-systemd-invoke: do not start glusterd.service
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
        if subprocess.run(command, env=env, capture_output=True, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
            result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"apt-get install {' '.join(missing)} failed:\n{result.stderr[-2000:]}")
    finally:
        if own_policy:
            policy.unlink(missing_ok=True)


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


# ----------------------------------------------------------------------------- host name


def _loopback_only(name: str) -> bool:
    try:
        infos = socket.getaddrinfo(name, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def _hosts_lines_without_ours() -> list[str]:
    return [line for line in HOSTS_FILE.read_text().splitlines() if not line.endswith(HOSTS_COMMENT)]


def remove_hosts_alias() -> bool:
    """Drop the ``/etc/hosts`` line this module adds; whether there was one."""
    if not HOSTS_FILE.exists():
        return False
    lines = HOSTS_FILE.read_text().splitlines()
    kept = _hosts_lines_without_ours()
    if len(kept) == len(lines):
        return False
    HOSTS_FILE.write_text("\n".join(kept) + "\n")  # in place: /etc/hosts may be a bind mount
    return True


def brick_host(force_alias: bool = False) -> tuple[str, bool]:
    """(host name for the bricks and the mount, whether ``/etc/hosts`` got our alias line)."""
    name = socket.gethostname()
    if not force_alias and name not in ("localhost", "") and _loopback_only(name):
        return name, False
    if not _loopback_only(HOSTS_ALIAS):
        lines = _hosts_lines_without_ours() + [f"127.0.0.1 {HOSTS_ALIAS} {HOSTS_COMMENT}"]
        HOSTS_FILE.write_text("\n".join(lines) + "\n")
    if not _loopback_only(HOSTS_ALIAS):
        raise RuntimeError(f"{HOSTS_ALIAS} does not resolve to 127.0.0.1 after editing {HOSTS_FILE}")
    return HOSTS_ALIAS, True


# ----------------------------------------------------------------------------- leftovers


def _glusterd_listening() -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", GLUSTERD_PORT)) == 0


def _bound_unix_paths() -> set[str]:
    paths = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8:
            paths.add(fields[7])
    return paths


def _unused_brick_sockets() -> list[Path]:
    if not RUN_DIR.is_dir():
        return []
    bound = _bound_unix_paths()
    return [path for path in RUN_DIR.glob("*.socket") if str(path) not in bound]


def clean_stale(volume: str = VOLUME) -> list[str]:
    """Remove what an earlier run that did not finish left: mounts, processes and directories named
    ``threefs-peer-glusterfs-*``, brick sockets nobody listens on, our ``/etc/hosts`` line, and
    ``volume`` in the system state directory (if a system glusterd once held it). Returns what it
    removed."""
    removed: list[str] = []
    directories: set[Path] = set(Path(tempfile.gettempdir()).glob(MARKER + "*"))
    pattern = re.compile(r"(/\S*/" + re.escape(MARKER) + r"[^/\s]+)")
    for fstype, mountpoint in mounts_matching(MARKER):
        unmount(mountpoint)
        removed.append(f"mount {mountpoint} ({fstype})")
        directories.update(Path(m) for m in pattern.findall(str(mountpoint)))
    pids = pids_mentioning(MARKER)
    for pid in pids:
        directories.update(Path(m) for m in pattern.findall(cmdline(pid)))
    for pid in end_processes(pids):
        removed.append(f"process {pid}")
    for directory in sorted(directories):
        ours = directory / _Snapshot.CREATED  # what that run's glusterd created in STATE_DIR
        if ours.exists() and not _glusterd_listening():
            for name in ours.read_text().split():
                if name in STATE_LEFTOVERS and (STATE_DIR / name).exists():
                    shutil.rmtree(STATE_DIR / name, ignore_errors=True)
                    removed.append(f"directory {STATE_DIR / name}")
        if directory.is_dir() and not mounts_matching(str(directory)):
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(f"directory {directory}")
            parent = directory.parent  # the ``threefs-peer-*`` of ``run``, once empty
            if parent.name.startswith("threefs-") and not any(parent.iterdir()):
                parent.rmdir()
                removed.append(f"directory {parent}")
    for path in _unused_brick_sockets():
        path.unlink(missing_ok=True)
        removed.append(f"socket {path}")
    if RUN_DIR.is_dir() and not _glusterd_listening():  # glusterd's empty subdirectories
        for path in sorted(RUN_DIR.rglob("*"), reverse=True):
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        if not any(RUN_DIR.iterdir()):
            RUN_DIR.rmdir()
            removed.append(f"directory {RUN_DIR}")
    if remove_hosts_alias():
        removed.append(f"{HOSTS_FILE} line {HOSTS_ALIAS}")
    volume_state = STATE_DIR / "vols" / volume
    if volume_state.exists() and not _glusterd_listening():
        shutil.rmtree(volume_state, ignore_errors=True)
        removed.append(f"volume state {volume_state}")
    return removed


# ----------------------------------------------------------------------------- the volume


@dataclass
class GlusterMount:
    mountpoint: Path
    state: Path  # the temporary directory: glusterd state, bricks, logs
    host: str
    volume: str
    listening: list[str] = field(default_factory=list)  # "tcp 127.0.0.1:24007 glusterd(pid)", ...


class _Snapshot:
    """Which entries of the system directories glusterd writes to existed before we started; the
    ones of ``STATE_DIR`` it will create are also written to ``state/CREATED``, for
    ``clean_stale`` should this run be killed."""

    CREATED = "created-in-var-lib-glusterd"

    def __init__(self, state: Path) -> None:
        self.run_dir_existed = RUN_DIR.exists()
        self.run_entries = set(os.listdir(RUN_DIR)) if self.run_dir_existed else set()
        self.state_entries = set(os.listdir(STATE_DIR)) if STATE_DIR.exists() else set()
        created = [name for name in STATE_LEFTOVERS if name not in self.state_entries]
        (state / self.CREATED).write_text("".join(f"{name}\n" for name in created))

    def restore(self) -> None:
        if RUN_DIR.exists():
            for name in set(os.listdir(RUN_DIR)) - self.run_entries:
                path = RUN_DIR / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            if not self.run_dir_existed:
                try:
                    RUN_DIR.rmdir()
                except OSError:
                    pass
        for name in STATE_LEFTOVERS:
            if name not in self.state_entries:
                shutil.rmtree(STATE_DIR / name, ignore_errors=True)


def _gluster(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = ["gluster", "--mode=script", f"--glusterd-sock={state}/glusterd.socket",
               f"--log-file={state}/log/cli.log", *args]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if check and result.returncode != 0:
        raise RuntimeError(f"gluster {' '.join(args)} failed: {result.stdout}{result.stderr}")
    return result


def _log_tail(path: Path) -> str:
    return path.read_bytes()[-3000:].decode(errors="replace") if path.exists() else ""


@contextmanager
def glusterfs_mount(
    parent: Path, *, volume: str = VOLUME, replicas: int = 3, force_alias: bool = False
) -> Iterator[GlusterMount]:
    """Start glusterd, create and start a ``replicas``-way replicated volume of as many bricks in a
    new directory under ``parent``, FUSE-mount it; yield a ``GlusterMount``; then unmount, delete
    the volume, stop every process and remove everything (see the module docstring)."""
    missing = missing_tools()
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)}: run bench/peers/glusterfs.py install")
    for line in clean_stale(volume):
        print(f"glusterfs: removed leftover {line}", file=sys.stderr, flush=True)
    if _glusterd_listening():
        raise RuntimeError(
            f"something already listens on 127.0.0.1:{GLUSTERD_PORT} (a glusterd not started by "
            "bench/peers/glusterfs.py?); stop it first"
        )
    parent.mkdir(parents=True, exist_ok=True)
    state = Path(tempfile.mkdtemp(prefix=MARKER, dir=parent))
    snapshot = _Snapshot(state)
    host, added_alias = "", False
    glusterd: subprocess.Popen[bytes] | None = None
    mountpoint = state / "mnt"
    created = False
    try:
        host, added_alias = brick_host(force_alias)
        for name in ("glusterd", "run", "log", "mnt", *(f"brick{i}" for i in range(replicas))):
            (state / name).mkdir()
        (state / "glusterd.vol").write_text(GLUSTERD_VOL.format(state=state, port=GLUSTERD_PORT))
        log = state / "log" / "glusterd.log"
        glusterd = subprocess.Popen(
            ["glusterd", "-N", "-f", str(state / "glusterd.vol"), "-l", str(log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while _gluster(state, "volume", "list", check=False).returncode != 0:
            if glusterd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"glusterd did not start:\n{_log_tail(log)}")
            time.sleep(0.1)
        bricks = [f"{host}:{state}/brick{i}" for i in range(replicas)]
        _gluster(state, "volume", "create", volume, "replica", str(replicas), *bricks, "force")
        created = True
        _gluster(state, "volume", "start", volume)
        mount_log = state / "log" / "mount.log"
        subprocess.run(
            ["mount", "-t", "glusterfs", "-o", f"log-file={mount_log}", f"{host}:/{volume}", str(mountpoint)],
            check=True, capture_output=True, timeout=START_TIMEOUT_S,
        )  # fmt: skip
        wait_mounted(mountpoint, None, mount_log)
        ours = [glusterd.pid, *pids_mentioning(str(state))]
        listening = listeners(ours)
        outside = loopback_only(listening)
        if outside:
            raise RuntimeError(f"GlusterFS listens beyond loopback: {outside}")
        yield GlusterMount(mountpoint, state, host, volume, listening)
    finally:
        unmount(mountpoint)
        if created and glusterd is not None and glusterd.poll() is None:
            _gluster(state, "volume", "stop", volume, "force", check=False)
            _gluster(state, "volume", "delete", volume, check=False)
        if glusterd is not None:
            end_processes([glusterd.pid])
            glusterd.wait()
        end_processes(pids_mentioning(str(state)))
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in pids_mentioning(str(state))) and time.monotonic() < deadline:
            time.sleep(0.05)
        snapshot.restore()
        if added_alias:
            remove_hosts_alias()
        shutil.rmtree(state, ignore_errors=True)


@contextmanager
def _mountpoint(directory: Path, force_alias: bool = False) -> Iterator[Path]:
    with glusterfs_mount(directory, force_alias=force_alias) as mount:
        print(f"host {mount.host}, volume {mount.volume}, state in {mount.state}", flush=True)
        for line in mount.listening:
            print(f"listening: {line}", flush=True)
        yield mount.mountpoint


def _extra(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def do_install(args: argparse.Namespace) -> int:
        install()
        print("glusterfs: packages present" if not missing_packages() else "glusterfs: install failed")
        return 0 if not missing_packages() else 1

    def do_clean(args: argparse.Namespace) -> int:
        for line in clean_stale():
            print(f"removed {line}")
        return 0

    commands.add_parser("install", help="install the Debian packages").set_defaults(func=do_install)
    commands.add_parser("clean", help="remove what a killed run left").set_defaults(func=do_clean)


if __name__ == "__main__":
    if os.environ.get("THREEFS_GLUSTER_HOSTS_ALIAS") == "1":  # test the /etc/hosts path
        sys.exit(run_cli(__doc__.splitlines()[0], lambda d: _mountpoint(d, True), extra=_extra))
    sys.exit(run_cli(__doc__.splitlines()[0], _mountpoint, extra=_extra))
