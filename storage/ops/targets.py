"""CreateTarget and RemoveTarget: an admin adds a target directory to this node or retires one.

A created target is served at once (local state ONLINE until mgmtd puts it in a chain) and is
remembered in ``<data_dir>/targets.json`` so it comes back after a restart. Creating a target
that is already served at the same path answers as if it had been created (a retried call).
Removal requires mgmtd to show the target in no chain (or not know it at all): its chunks are
then deleted with its directory.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import trio

from storage.state import StorageState
from threefs.errors import Code, ThreeFSError
from threefs.wire.storage import (
    CreateTargetRequest,
    CreateTargetResponse,
    RemoveTargetRequest,
    RemoveTargetResponse,
)

__all__ = ["create_target", "remove_target"]

log = logging.getLogger("storage.targets")

_NAME_MAX = 255  # Linux limits for one component and a whole path (with its NUL)
_PATH_MAX = 4096


async def create_target(state: StorageState, request: CreateTargetRequest) -> CreateTargetResponse:
    """Create and serve target ``request.target_id`` under ``request.path`` ("" = the node's
    ``data_dir``). Raises ALREADY_EXISTS when the id is served at another path, INVALID_ARG for
    a path no directory can have (relative, a NUL byte, a component over NAME_MAX or the whole
    over PATH_MAX), STORAGE_IO_ERROR when the directory cannot be made."""
    if request.path and not Path(request.path).is_absolute():
        raise ThreeFSError(Code.INVALID_ARG, f"target path {request.path!r} must be absolute")
    _check_path_can_exist(request.path)
    path = Path(request.path) if request.path else Path(state.config.data_dir) / f"target-{request.target_id}"
    if request.target_id in state.targets:
        existing = state.targets.get(request.target_id)
        if existing.path == path:
            return CreateTargetResponse(target_id=request.target_id, path=str(path))
        raise ThreeFSError(
            Code.ALREADY_EXISTS, f"target {request.target_id} is already served from {existing.path}"
        )
    registry = state.targets

    def open_and_remember() -> None:
        target = registry.open(request.target_id, path)
        try:
            registry.remember(request.target_id, path, keep=True)
        except OSError as exc:
            registry.drop(request.target_id)
            target.store.close()
            raise ThreeFSError(
                Code.STORAGE_IO_ERROR, f"cannot record target {request.target_id}: {exc}"
            ) from None

    await trio.to_thread.run_sync(open_and_remember)
    log.info("created target %d at %s", request.target_id, path)
    state.observe_routing()
    state.wake_heartbeat()
    return CreateTargetResponse(target_id=request.target_id, path=str(path))


def _check_path_can_exist(path: str) -> None:
    """INVALID_ARG, not a retryable I/O error, for a path no file system accepts."""
    if "\x00" in path:
        raise ThreeFSError(Code.INVALID_ARG, f"target path {path!r} contains a NUL byte")
    encoded = os.fsencode(path)
    if len(encoded) >= _PATH_MAX:
        raise ThreeFSError(Code.INVALID_ARG, f"target path is {len(encoded)} bytes, over {_PATH_MAX - 1}")
    for component in encoded.split(b"/"):
        if len(component) > _NAME_MAX:
            raise ThreeFSError(
                Code.INVALID_ARG,
                f"target path component {component[:32]!r}... is {len(component)} bytes, over {_NAME_MAX}",
            )


async def remove_target(state: StorageState, request: RemoveTargetRequest) -> RemoveTargetResponse:
    """Stop serving target ``request.target_id`` and delete its directory. Raises
    STORAGE_TARGET_NOT_FOUND, or INVALID_ARG while mgmtd still has it in a chain."""
    target = state.targets.get(request.target_id)
    await state.refresh_routing()
    routing = state.routing_info()
    info = routing.targets.get(request.target_id) if routing is not None else None
    if info is not None and info.chain_id:
        raise ThreeFSError(
            Code.INVALID_ARG,
            f"target {request.target_id} is still in chain {info.chain_id} ({info.public_state.name}): "
            "take it out of the chain in mgmtd first",
        )
    # In no chain, the target gets no chain requests; the ones naming it (reads, dumps) fail
    # with TARGET_NOT_FOUND from now on.
    registry = state.targets
    registry.drop(request.target_id)
    state.space_guard.forget(request.target_id)

    def delete() -> int:
        try:
            count = target.store.space().chunk_count
        finally:
            target.store.close()
        shutil.rmtree(target.path, ignore_errors=True)
        registry.remember(request.target_id, target.path, keep=False)
        return count

    try:
        removed = await trio.to_thread.run_sync(delete)
    except (OSError, ThreeFSError) as exc:
        raise ThreeFSError(Code.STORAGE_IO_ERROR, f"removing target {request.target_id}: {exc}") from None
    log.info("removed target %d (%d chunks) at %s", request.target_id, removed, target.path)
    state.wake_heartbeat()
    return RemoveTargetResponse(removed_chunks=removed)
