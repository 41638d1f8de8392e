"""``threefs up`` / ``down`` / ``status``: a whole cluster on this machine under one data
directory (``threefs.local.layout`` describes the files), its processes detached so they outlive
the command.

``up`` is idempotent: on a directory that already holds a cluster it starts only the processes
that are not running (same configs, same ports) and waits until every chain is SERVING again.
Every failure is a ``LaunchError`` whose message says what to do; ``usage`` marks bad options
and configuration (port taken, fuse3 missing) as opposed to a process that failed.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from threefs.errors import ThreeFSError
from threefs.local import bootstrap, configs
from threefs.local.layout import HOST, ClusterDir, ClusterState, check_shape, project_root, validate_kv
from threefs.local.processes import ManagedProcess, free_port, port_in_use, stop_processes
from threefs.mounts import is_mount_point, mount_type
from threefs.rpc import RpcClient, RpcClientConfig

__all__ = ["LaunchError", "UpOptions", "check_options", "down", "running_pids", "up"]

Progress = Callable[[str], None]
MOUNT_TIMEOUT_S = 30.0


class LaunchError(Exception):
    """``threefs up``/``down`` could not do its job; ``usage``: an option or the environment is
    wrong (nothing was started), else a process failed (its log tail is in the message)."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


@dataclass(frozen=True)
class UpOptions:
    """The options of ``threefs up``; ``None`` means "the recorded value, else the default"."""

    storage_nodes: int | None = None
    targets_per_node: int | None = None
    replicas: int | None = None
    chunk_size: int | None = None
    kv: str | None = None
    mount: Path | None = None
    timeout_s: float = 120.0


def _quiet(message: str) -> None:
    pass


@contextmanager
def _locked(cluster: ClusterDir) -> Iterator[None]:
    """One ``up``/``down`` at a time per data directory."""
    cluster.run_dir.mkdir(parents=True, exist_ok=True)
    with (cluster.run_dir / "launcher.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LaunchError(f"another threefs up/down is working on {cluster.path}", usage=True) from None
        yield


# ----------------------------------------------------------------------------- state


def check_options(options: UpOptions) -> None:
    """Raise ``LaunchError(usage=True)`` unless ``options`` (defaults filled in) make a cluster."""
    defaults = ClusterState()
    nodes = options.storage_nodes or defaults.storage_nodes
    try:
        check_shape(
            nodes,
            options.targets_per_node or defaults.targets_per_node,
            options.replicas or min(defaults.replicas, nodes),
            options.chunk_size or defaults.chunk_size,
        )
        if options.kv is not None:
            validate_kv(options.kv)
    except ThreeFSError as exc:
        raise LaunchError(exc.message, usage=True) from None
    if not options.timeout_s > 0:
        raise LaunchError(f"--timeout must be > 0, not {options.timeout_s:g}", usage=True)


def _new_state(options: UpOptions) -> ClusterState:
    defaults = ClusterState()
    nodes = options.storage_nodes or defaults.storage_nodes
    return ClusterState(
        storage_nodes=nodes,
        targets_per_node=options.targets_per_node or defaults.targets_per_node,
        replicas=options.replicas or min(defaults.replicas, nodes),
        chunk_size=options.chunk_size or defaults.chunk_size,
        kv=options.kv or defaults.kv,
        mgmtd_port=free_port(HOST),
        storage_ports=[free_port(HOST) for _ in range(nodes)],
        meta_port=free_port(HOST),
    )


def _check_options_match(cluster: ClusterDir, state: ClusterState, options: UpOptions) -> None:
    """An option given again must agree with what the directory's cluster was created with."""
    for flag, given, recorded in (
        ("--storage-nodes", options.storage_nodes, state.storage_nodes),
        ("--targets-per-node", options.targets_per_node, state.targets_per_node),
        ("--replicas", options.replicas, state.replicas),
        ("--chunk-size", options.chunk_size, state.chunk_size),
        ("--kv", options.kv, state.kv),
    ):
        if given is not None and given != recorded:
            raise LaunchError(
                f"{cluster.path} holds a cluster created with {flag} {recorded} (not {given}); "
                f"to change it: threefs down --data-dir {cluster.path}, remove the directory, "
                "and run threefs up again",
                usage=True,
            )


def _prepare(cluster: ClusterDir, options: UpOptions, progress: Progress) -> ClusterState:
    try:
        state = cluster.load_state()
    except ThreeFSError as exc:
        raise LaunchError(f"{exc.message} (fix or remove {cluster.state_file})", usage=True) from None
    if state is None:
        try:
            if options.kv is not None:
                validate_kv(options.kv)
            state = _new_state(options)
        except ThreeFSError as exc:
            raise LaunchError(exc.message, usage=True) from None
        if not cluster.secret_file.exists():
            cluster.secret_file.touch(mode=0o600)
            cluster.secret_file.write_text(secrets.token_hex(32) + "\n")
        cluster.save_state(state)
        progress(
            f"new cluster in {cluster.path}: {state.storage_nodes} storage node(s) x "
            f"{state.targets_per_node} target(s), {state.replicas} replica(s), chunk "
            f"{state.chunk_size >> 10} KiB, kv {state.kv}"
        )
    else:
        _check_options_match(cluster, state, options)
        check_shape(state.storage_nodes, state.targets_per_node, state.replicas, state.chunk_size)
    cluster.write_configs(state)
    return state


def _check_mount_prerequisites(cluster: ClusterDir, mountpoint: Path, progress: Progress) -> None:
    if not Path("/dev/fuse").exists() or shutil.which("fusermount3") is None:
        raise LaunchError(
            "--mount needs FUSE 3: /dev/fuse and the fusermount3 program (Debian/Ubuntu: "
            "apt-get install fuse3); start without --mount to use the library only",
            usage=True,
        )
    if importlib.util.find_spec("client.cli.mount") is None:
        raise LaunchError("--mount needs the threefs mount command (client.cli.mount), not installed")
    kind = mount_type(mountpoint)
    if kind is not None:
        # never stat a mounted path here: with meta down (the process this call may be about
        # to restart) the mount's answer waits for meta
        if cluster.mount_process(mountpoint).running_pid() is not None:
            return
        if kind != "fuse.threefs" or cluster.recorded_mountpoint() != mountpoint:
            raise LaunchError(f"{mountpoint} is already a mount point (of something else)", usage=True)
        # this cluster's mount whose daemon is gone ("Transport endpoint is not connected")
        if not _unmount_path(mountpoint):
            raise LaunchError(
                f"{mountpoint}: this cluster's mount lost its daemon and could not be unmounted"
            )
        progress(f"{mountpoint}: its mount process was gone: unmounted the dead mount")
    if mountpoint.exists() and not mountpoint.is_dir():
        raise LaunchError(f"mount point {mountpoint} is not a directory", usage=True)


# ----------------------------------------------------------------------------- up


class _Starter:
    """Starts the processes of one ``up`` and remembers them, to stop them if ``up`` fails."""

    def __init__(self, cluster: ClusterDir, progress: Progress) -> None:
        self.cluster = cluster
        self.progress = progress
        self.started: list[ManagedProcess] = []
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.watched: list[ManagedProcess] = []
        self.env = dict(os.environ)

    def ensure(self, process: ManagedProcess) -> bool:
        """Start ``process`` unless it runs; returns whether it was started."""
        self.watched.append(process)
        pid = process.running_pid()
        if pid is not None:
            self.progress(f"{process.name}: running (pid {pid})")
            return False
        process.pid_path.unlink(missing_ok=True)  # stale
        child = process.start(project_root(), self.env)
        self.started.append(process)
        self.children[process.name] = child
        self.progress(f"{process.name}: started (pid {child.pid}, log {process.log_path})")
        return True

    def stop_started(self, timeout_s: float) -> None:
        """SIGTERM what this ``up`` started (SIGKILL after ``timeout_s``) and drop its pid files."""
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + timeout_s
        for child in self.children.values():
            try:
                child.wait(max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for process in self.started:
            process.pid_path.unlink(missing_ok=True)

    def check_alive(self) -> None:
        for process in self.watched:
            child = self.children.get(process.name)
            if (child.poll() is not None) if child is not None else process.running_pid() is None:
                raise LaunchError(
                    f"{process.name} exited during start-up; the end of {process.log_path}:\n"
                    f"{process.log_tail().rstrip()}"
                )

    async def wait_listening(self, process: ManagedProcess, kind: str, node_id: int) -> None:
        address = await bootstrap.wait_listening(process.out_path, kind, node_id, self.check_alive)
        self.progress(f"{process.name}: listening on {address}")


async def _bring_up(cluster: ClusterDir, state: ClusterState, starter: _Starter) -> int:
    """Start what is not running and wait until the cluster serves; returns the chain count."""
    address = cluster.mgmtd_address(state)
    secret = cluster.secret_file.read_text().strip()
    storage = cluster.storage_processes(state)
    mgmtd, meta = cluster.mgmtd_process(), cluster.meta_process()
    if starter.ensure(mgmtd):
        await starter.wait_listening(mgmtd, "mgmtd", configs.MGMTD_NODE_ID)
    async with RpcClient(secret, RpcClientConfig(connect_timeout_s=2.0)) as rpc:
        await bootstrap.wait_primary(rpc, address, starter.check_alive)
        targets = {n: configs.target_ids(n, state.targets_per_node) for n in storage}
        if await bootstrap.create_missing_targets(rpc, address, targets):
            starter.progress(f"declared {state.storage_nodes * state.targets_per_node} target(s) at mgmtd")
        fresh = [(n, p) for n, p in storage.items() if starter.ensure(p)]
        for node_id, process in fresh:
            await starter.wait_listening(process, "storage", node_id)
        await bootstrap.wait_registered(rpc, address, set(storage), starter.check_alive)
        chain_ids, version = await bootstrap.ensure_chain_table(
            rpc, address, configs.TABLE_ID, state.replicas
        )

        def chains(ready: int, total: int) -> None:
            starter.progress(f"chains SERVING: {ready}/{total}")

        await bootstrap.wait_serving(rpc, address, chain_ids, starter.check_alive, chains)
        if starter.ensure(meta):
            await starter.wait_listening(meta, "meta", configs.FIRST_META_NODE_ID)
        await bootstrap.wait_registered(rpc, address, {configs.FIRST_META_NODE_ID}, starter.check_alive)
    return len(chain_ids)


def _mount(cluster: ClusterDir, mountpoint: Path, starter: _Starter) -> None:
    process = cluster.mount_process(mountpoint)
    if process.running_pid() is not None and is_mount_point(mountpoint):
        starter.progress(f"{mountpoint}: mounted (pid {process.running_pid()})")
        return
    mountpoint.mkdir(parents=True, exist_ok=True)
    starter.ensure(process)
    cluster.mount_path_file.write_text(f"{mountpoint}\n")
    deadline = time.monotonic() + MOUNT_TIMEOUT_S
    while not is_mount_point(mountpoint):
        starter.check_alive()
        if time.monotonic() > deadline:
            raise LaunchError(
                f"{mountpoint} was not mounted within {MOUNT_TIMEOUT_S:g} s; see {process.log_path}"
            )
        time.sleep(0.05)
    starter.progress(f"{mountpoint}: mounted")


def up(data_dir: str | Path, options: UpOptions | None = None, progress: Progress = _quiet) -> ClusterDir:
    """Start (or complete) the cluster in ``data_dir`` and return its paths once every chain is
    SERVING, the meta server is registered, ``cluster.toml`` is written and (with ``mount``)
    the mount point is mounted. Raises ``LaunchError``; on failure the processes this call
    started are stopped again (those already running are left alone)."""
    options = options or UpOptions()
    cluster = ClusterDir(data_dir)
    if not cluster.state_file.exists():
        check_options(options)  # before anything is created
    cluster.path.mkdir(parents=True, exist_ok=True)
    with _locked(cluster):
        state = _prepare(cluster, options, progress)
        mountpoint = options.mount.expanduser().absolute() if options.mount else None
        if mountpoint is not None:
            _check_mount_prerequisites(cluster, mountpoint, progress)
        ports = cluster.node_ports(state)
        for process in cluster.service_processes(state):
            port = ports[process.name]
            if process.running_pid() is None and port_in_use(HOST, port):
                raise LaunchError(
                    f"port {port} of {process.name} ({HOST}:{port}, recorded in {cluster.state_file}) is "
                    "in use by another process: stop that process, or remove the data directory to "
                    "start a new cluster on free ports",
                    usage=True,
                )
        starter = _Starter(cluster, progress)
        try:
            try:
                chains = trio.run(_bring_up_with_deadline, cluster, state, starter, options.timeout_s)
            except ThreeFSError as exc:
                raise LaunchError(f"{exc.code.name}: {exc.message}") from None
            cluster.write_cluster_config(state)
            progress(f"cluster ready: {chains} chain(s) SERVING; client config {cluster.cluster_config}")
            if mountpoint is not None:
                _mount(cluster, mountpoint, starter)
        except BaseException:
            starter.stop_started(timeout_s=10.0)
            raise
    return cluster


async def _bring_up_with_deadline(
    cluster: ClusterDir, state: ClusterState, starter: _Starter, timeout_s: float
) -> int:
    try:
        with trio.fail_after(timeout_s):
            return await _bring_up(cluster, state, starter)
    except trio.TooSlowError:
        raise LaunchError(
            f"the cluster was not SERVING within {timeout_s:g} s; see the logs in {cluster.log_dir}"
        ) from None


# ----------------------------------------------------------------------------- down


def _unmount(cluster: ClusterDir, progress: Progress) -> list[str]:
    mountpoint = cluster.recorded_mountpoint()
    if mountpoint is None:
        return []
    process = cluster.mount_process(mountpoint)
    if is_mount_point(mountpoint) and _unmount_path(mountpoint):
        progress(f"{mountpoint}: unmounted")
    stopped = stop_processes([process], timeout_s=10.0)
    cluster.mount_path_file.unlink(missing_ok=True)
    return stopped


def _unmount_path(mountpoint: Path) -> bool:
    """Unmount ``mountpoint`` (lazily if it is busy); whether that worked."""
    tool = shutil.which("fusermount3")
    commands = [[tool, "-u", str(mountpoint)], [tool, "-u", "-z", str(mountpoint)]] if tool else []
    for command in commands or [["umount", str(mountpoint)]]:
        if subprocess.run(command, capture_output=True, check=False).returncode == 0:
            return True
    return False


def down(data_dir: str | Path, progress: Progress = _quiet, timeout_s: float = 10.0) -> list[str]:
    """Unmount, then stop every process ``up`` started in ``data_dir`` (SIGTERM, SIGKILL after
    ``timeout_s``); returns the names of those that were running. Data is kept."""
    cluster = ClusterDir(data_dir)
    if not cluster.path.is_dir():
        raise LaunchError(f"{cluster.path}: no such directory", usage=True)
    with _locked(cluster):
        stopped = _unmount(cluster, progress)
        state = cluster.load_state()
        if state is not None:
            processes = cluster.service_processes(state)
        else:  # half-created: stop whatever has a pid file
            processes = [cluster.mgmtd_process(), cluster.meta_process()]
        stopped += stop_processes(processes, timeout_s)
    for name in stopped:
        progress(f"{name}: stopped")
    return stopped


def running_pids(cluster: ClusterDir, state: ClusterState) -> dict[int, int | None]:
    """``{node_id: pid or None}`` of the service processes of ``cluster``."""
    pids: dict[int, int | None] = {configs.MGMTD_NODE_ID: cluster.mgmtd_process().running_pid()}
    for node_id, process in cluster.storage_processes(state).items():
        pids[node_id] = process.running_pid()
    pids[configs.FIRST_META_NODE_ID] = cluster.meta_process().running_pid()
    return pids
