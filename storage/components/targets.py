"""The targets this node serves: each one's chunk store, local state and health.

A target is a directory holding a ``DiskChunkStore`` and a marker file ``threefs-target.json``
(``{"target_id", "cluster_id"}``) so that a directory is never served under another target id or
cluster. Targets come from the config file and from CreateTarget calls; the latter are
remembered in ``<data_dir>/targets.json`` so they come back after a restart.

Health: a store call that fails with STORAGE_IO_ERROR (or an ``OSError``) marks the target
failed; from then on it reports local OFFLINE and refuses requests (TARGET_OFFLINE) until the
process restarts. Everything here runs on the trio thread except the store calls themselves.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

from storage.components.local_state import next_local_state, public_state_of
from storage.store.disk import DiskChunkStore
from storage.store.interface import ChunkStore, SpaceInfo
from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import LocalTargetState, PublicTargetState, RoutingInfo

__all__ = ["MARKER_NAME", "OpenStore", "Target", "TargetRegistry", "open_disk_target"]

log = logging.getLogger("storage.targets")

MARKER_NAME = "threefs-target.json"
OpenStore = Callable[[int, Path], ChunkStore]  # (target id, directory) -> an open store


def open_disk_target(path: Path, target_id: int, cluster_id: str, *, fsync: bool) -> ChunkStore:
    """Open (creating when new) the target directory ``path`` for ``target_id`` of
    ``cluster_id``. Raises CONFIG_INVALID when the directory's marker names another target or
    cluster, STORAGE_IO_ERROR when it cannot be opened. Blocking: call from a worker thread."""
    marker = path / MARKER_NAME
    expected = {"target_id": target_id, "cluster_id": cluster_id}
    try:
        path.mkdir(parents=True, exist_ok=True)
        if marker.exists():
            found = json.loads(marker.read_text())
            if found != expected:
                raise ThreeFSError(
                    Code.CONFIG_INVALID,
                    f"{path} belongs to target {found.get('target_id')} of cluster "
                    f"{found.get('cluster_id')!r}, not target {target_id} of {cluster_id!r}",
                )
        else:
            temporary = marker.with_suffix(".tmp")
            temporary.write_text(json.dumps(expected))
            os.replace(temporary, marker)
    except (OSError, ValueError) as exc:
        raise ThreeFSError(Code.STORAGE_IO_ERROR, f"cannot open target directory {path}: {exc}") from None
    return DiskChunkStore.open(path, fsync=fsync)


class Target:
    """One served target. ``local_state`` is what the next heartbeat reports; ``synced_version``
    is the chain version of the last SyncDone (0: none since the last SyncStart)."""

    def __init__(self, target_id: int, path: Path, store: ChunkStore) -> None:
        self.target_id = target_id
        self.path = path
        self.store = store
        self.local_state = LocalTargetState.ONLINE
        self.failure = ""  # why the target failed ("" while healthy)
        self.synced_version = 0
        self.space: SpaceInfo | None = None  # as of the last heartbeat

    @property
    def failed(self) -> bool:
        return bool(self.failure)

    def check_usable(self) -> None:
        """Raise STORAGE_TARGET_OFFLINE when the target's disk failed."""
        if self.failure:
            raise ThreeFSError(Code.STORAGE_TARGET_OFFLINE, f"target {self.target_id} failed: {self.failure}")

    def mark_failed(self, reason: str) -> None:
        if not self.failure:
            log.error("target %d failed, reporting it OFFLINE: %s", self.target_id, reason)
            self.failure = reason or "I/O error"
        self.local_state = LocalTargetState.OFFLINE


class TargetRegistry:
    """The node's targets by id. ``open_store(target_id, path)`` opens one (blocking; the app
    calls it in a worker thread); ``manifest`` is the file that remembers created targets (None:
    nothing is remembered, as in tests with in-memory stores)."""

    def __init__(self, open_store: OpenStore, manifest: Path | None = None) -> None:
        self.open_store = open_store
        self.manifest = manifest
        self._targets: dict[int, Target] = {}

    def __iter__(self) -> Iterator[Target]:
        return iter(list(self._targets.values()))

    def __len__(self) -> int:
        return len(self._targets)

    def __contains__(self, target_id: object) -> bool:
        return target_id in self._targets

    def ids(self) -> frozenset[int]:
        return frozenset(self._targets)

    def get(self, target_id: int) -> Target:
        """The target, or STORAGE_TARGET_NOT_FOUND."""
        target = self._targets.get(target_id)
        if target is None:
            raise ThreeFSError(Code.STORAGE_TARGET_NOT_FOUND, f"this node serves no target {target_id}")
        return target

    def remembered(self) -> list[tuple[int, Path]]:
        """The created targets listed in the manifest (empty without one). Blocking."""
        if self.manifest is None or not self.manifest.exists():
            return []
        try:
            entries = json.loads(self.manifest.read_text())
            return [(int(e["target_id"]), Path(e["path"])) for e in entries["targets"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ThreeFSError(Code.CONFIG_INVALID, f"{self.manifest}: unreadable: {exc}") from None

    def open(self, target_id: int, path: Path, *, keep_failed: bool = False) -> Target:
        """Open the store of a target and add it (blocking). Raises CONFIG_INVALID (the
        directory belongs to another target) and, unless ``keep_failed``, STORAGE_IO_ERROR;
        with ``keep_failed`` a target whose disk cannot be opened is added as failed (it
        reports OFFLINE, so mgmtd takes it out of its chain) instead."""
        if target_id in self._targets:
            raise ThreeFSError(Code.ALREADY_EXISTS, f"target {target_id} is already served")
        try:
            store = self.open_store(target_id, path)
        except ThreeFSError as exc:
            if not keep_failed or exc.code != Code.STORAGE_IO_ERROR:
                raise
            target = Target(target_id, path, _UnopenedStore(exc.message))
            target.mark_failed(exc.message)
        else:
            target = Target(target_id, path, store)
        self._targets[target_id] = target
        return target

    def remember(self, target_id: int, path: Path, *, keep: bool) -> None:
        """Add (``keep``) or drop a created target in the manifest. Blocking."""
        if self.manifest is None:
            return
        entries = {tid: p for tid, p in self.remembered() if tid != target_id}
        if keep:
            entries[target_id] = path
        body = {"targets": [{"target_id": tid, "path": str(p)} for tid, p in sorted(entries.items())]}
        self.manifest.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.manifest.with_suffix(".tmp")
        temporary.write_text(json.dumps(body, indent=1))
        os.replace(temporary, self.manifest)

    def drop(self, target_id: int) -> Target:
        """Stop serving a target (its store is left open for the caller to close)."""
        return self._targets.pop(target_id)

    def update_local_states(self, routing: RoutingInfo | None, *, promote: bool = False) -> bool:
        """Move every target's local state on by ``next_local_state`` (``promote``: ONLINE
        targets may become UPTODATE; only with freshly fetched routing). True if one changed."""
        changed = False
        for target in self._targets.values():
            state = next_local_state(
                target.local_state,
                target.target_id,
                routing,
                failed=target.failed,
                synced_version=target.synced_version,
                promote=promote,
            )
            if state != target.local_state:
                log.info(
                    "target %d local state %s -> %s", target.target_id, target.local_state.name, state.name
                )
                target.local_state = state
                changed = True
        return changed

    def promotion_pending(self, routing: RoutingInfo | None) -> bool:
        """Whether a target might claim UPTODATE at the next heartbeat (an ONLINE target shown
        SERVING, or a synced one shown SYNCING): the heartbeat then fetches routing first."""
        for target in self._targets.values():
            public = public_state_of(routing, target.target_id)
            if public == PublicTargetState.SERVING and target.local_state == LocalTargetState.ONLINE:
                return True
            if public == PublicTargetState.SYNCING and target.synced_version:
                return True
        return False

    def close_all(self) -> None:
        """Close every store (blocking)."""
        for target in self._targets.values():
            try:
                target.store.close()
            except ThreeFSError as exc:
                log.warning("closing target %d: %s", target.target_id, exc)


class _UnopenedStore(ChunkStore):
    """Stands in for the store of a target whose disk could not be opened: every call fails."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def _fail(self, *args: object, **kwargs: object) -> NoReturn:
        raise ThreeFSError(Code.STORAGE_IO_ERROR, f"target store not open: {self.reason}")

    get_meta = read = prepare = commit = abort = remove = list_meta = space = _fail  # type: ignore[assignment]

    def close(self) -> None:
        pass
