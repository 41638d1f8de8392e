"""One network namespace per cluster process, all on one bridge, so a node's link can be cut.

``Network().setup(names)`` takes a free slot ``s`` (1 to ``SLOTS``), then makes a bridge
``tfc<s>-br`` holding ``10.77.<s>.1/24`` in this (the root) namespace and, for each process name,
a namespace ``tfc<s>-<i>`` joined to the bridge by a veth pair: the namespace side
``10.77.<s>.<10+i>/24`` (plus its own ``lo``), the root side
``tfc<s>-h<i>`` enslaved to the bridge. Processes run through ``wrap(name, argv)`` (``ip netns
exec``) and listen on ``host_of(name)``; clients in the root namespace (the workload, the FUSE
daemon) reach every node through the bridge, nodes reach each other the same way. ``cut(name)``
takes the root side of the node's veth down (nothing reaches the node and it reaches nothing);
``restore(name)`` brings it up. ``teardown()`` deletes everything ``setup`` made, and is safe to
call twice or after a failed setup. Traffic never leaves this machine. A slot is held with an
exclusive lock (``/run/lock/threefs-chaos-<s>.lock``) from ``setup`` to ``teardown``, so runs at
the same time (a long run and CI) get different names and subnets.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TextIO

__all__ = ["Network", "netns_unavailable"]

_FIRST_HOST = 10
SLOTS = 8


def netns_unavailable() -> str | None:
    """Why namespaces cannot be used here (None when they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the ip command is missing (Debian package iproute2)"
    return None


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


class Network:
    """See the module docstring."""

    def __init__(self) -> None:
        self.slot = 0
        self.prefix = self.bridge = self.subnet = ""
        self._index: dict[str, int] = {}
        self._lock: TextIO | None = None

    def _take_slot(self) -> None:
        lock_dir = Path("/run/lock") if Path("/run/lock").is_dir() else Path(tempfile.gettempdir())
        for slot in range(1, SLOTS + 1):
            lock = (lock_dir / f"threefs-chaos-{slot}.lock").open("w")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            self._lock, self.slot = lock, slot
            self.prefix, self.subnet = f"tfc{slot}", f"10.77.{slot}"
            self.bridge = f"{self.prefix}-br"
            return
        raise RuntimeError(f"all {SLOTS} chaos network slots are in use by other runs")

    def setup(self, names: list[str]) -> None:
        self._take_slot()
        self.teardown(keep_lock=True)  # leftovers of a killed run in this slot
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for index, name in enumerate(names):
                self._index[name] = index
                namespace, host_side, node_side = self._names(index)
                _ip("netns", "add", namespace)
                _ip("link", "add", host_side, "type", "veth", "peer", "name", node_side)
                _ip("link", "set", node_side, "netns", namespace)
                _ip("link", "set", host_side, "master", self.bridge)
                _ip("link", "set", host_side, "up")
                _ip("-n", namespace, "addr", "add", f"{self.host_of(name)}/24", "dev", node_side)
                _ip("-n", namespace, "link", "set", node_side, "up")
                _ip("-n", namespace, "link", "set", "lo", "up")
        except BaseException:
            self.teardown()
            raise

    def _names(self, index: int) -> tuple[str, str, str]:
        return f"{self.prefix}-{index}", f"{self.prefix}-h{index}", f"{self.prefix}-n{index}"

    def host_of(self, name: str) -> str:
        return f"{self.subnet}.{_FIRST_HOST + self._index[name]}"

    def wrap(self, name: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self._names(self._index[name])[0], *argv]

    def cut(self, name: str) -> None:
        _ip("link", "set", self._names(self._index[name])[1], "down")

    def restore(self, name: str) -> None:
        _ip("link", "set", self._names(self._index[name])[1], "up")

    def teardown(self, *, keep_lock: bool = False) -> None:
        if not self.prefix:
            return
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
        for line in listed.splitlines():
            namespace = line.split()[0] if line.strip() else ""
            if namespace.startswith(f"{self.prefix}-") and namespace[len(self.prefix) + 1 :].isdigit():
                subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        links = subprocess.run(
            ["ip", "-o", "link", "show"], capture_output=True, text=True, check=False
        ).stdout
        for line in links.splitlines():
            parts = line.split(":")
            if len(parts) > 1:
                link = parts[1].strip().split("@")[0]
                if link == self.bridge or link.startswith(f"{self.prefix}-h"):
                    subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
        self._index.clear()
        if not keep_lock and self._lock is not None:
            self._lock.close()  # releases the flock: the slot is another run's to take now
            self._lock = None
            self.prefix = ""
