"""Forwarding an update to the successor, through chain changes and successor failures.

``forward`` sends one prepared update (UpdateChunk or RemoveChunks) to the current successor of
this hop's target and returns the successor's reply, or None when this target is the last one
(it commits at once). While the caller's deadline allows, it retries on every retryable error
(the successor died or restarts, refused a stale chain version, is syncing, ...), refreshing
routing before each try and re-reading the chain: when mgmtd has dropped a dead successor the
next try goes to the new one, under the new chain version; when this target became the last one
there is nobody left to ask. It gives up (``ForwardFailed``) when:

- this target no longer has its role: the head is no longer the chain's first SERVING target,
  a hop no longer receives updates (answer: STORAGE_STALE_CHAIN_VERSION, the client refreshes);
- the successor answers a non-retryable error, or disagrees on the chunk's checksum even after
  the whole chunk was sent (``ForwardPlan.escalate``);
- the deadline passes (the error of the last try, or RPC_DEADLINE_EXCEEDED).

``ForwardFailed.delivered`` says whether some try may have left the update at the successor:
only when none did may the caller drop its pending version; otherwise the successor may have
committed it and the version must never be reused (see ``storage.components.update_rules``).
A try leaves nothing when it failed to connect, or when the successor refused it with
STORAGE_NO_SPACE: a target refuses a new chunk below its free-space reserve before preparing
anything, a prepare that meets the OS's ENOSPC is undone by the store, and a target refused by
its own successor drops its pending version (this rule) before passing the refusal on. A
refusal after an earlier try that may have been delivered still counts as delivered.

Two cases escape this, both only once the disk itself is full (past the reserve): a successor
that already held the version as a leftover of an earlier update and failed to prepare it
again, and a commit whose metadata write failed after the successor had committed. Some
replica after the refusing one may then hold the version committed with other content while
the predecessors reuse the number; the next update of the chunk finds the answers differ and
sends the whole chunk, which replaces what the replica holds at that version (update_rules,
REPLACE). The refused write was never acknowledged, so nothing acknowledged is lost.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import msgspec
import trio

from storage.state import StorageState
from threefs.errors import Code, ThreeFSError
from threefs.rpc.transport import Buffer
from threefs.wire.common import MethodSpec
from threefs.wire.mgmtd import ChainTarget

__all__ = ["ForwardFailed", "ForwardPlan", "forward", "forward_timeout"]

log = logging.getLogger("storage.forward")

_FIRST_PAUSE_S = 0.02
_MAX_PAUSE_S = 0.5
_NOT_DELIVERED = frozenset({Code.RPC_CONNECT_FAILED, Code.RPC_AUTH_FAILED, Code.STORAGE_NO_SPACE})


class ForwardFailed(Exception):
    """The successor could not be brought to commit the update: ``error`` says why."""

    def __init__(self, error: ThreeFSError, delivered: bool) -> None:
        super().__init__(error)
        self.error = error
        self.delivered = delivered


class ForwardPlan(Protocol):
    """What ``forward`` sends and how it judges the reply."""

    spec: MethodSpec

    async def build(self, successor: ChainTarget, chain_version: int) -> tuple[msgspec.Struct, Buffer]:
        """The request (and payload) for ``successor`` under ``chain_version``."""

    def accept(self, reply: Any) -> bool:
        """Whether the successor's reply agrees with this target's pending version."""

    def escalate(self) -> bool:
        """Switch to sending the whole chunk; False when already doing so (then give up)."""


def forward_timeout(deadline: float) -> float:
    """The deadline of one forward: a bit less than what is left, so that this hop can still
    answer its own caller when the successor's time runs out."""
    remaining = deadline - trio.current_time()
    return remaining * 0.9 - 0.005


async def forward(
    state: StorageState,
    plan: ForwardPlan,
    *,
    chain_id: int,
    target_id: int,
    head: bool,
    deadline: float,
) -> Any | None:
    """Bring the successor of ``target_id`` in ``chain_id`` to commit ``plan`` (see the module
    docstring); returns its reply, or None when ``target_id`` is the last target."""
    delivered = False
    pause = _FIRST_PAUSE_S
    last_error: ThreeFSError | None = None
    while True:
        position = state.current_position(chain_id, target_id)
        if position is None or not (position.is_head if head else position.receives_updates):
            where = position.describe() if position is not None else f"chain {chain_id}"
            error = ThreeFSError(
                Code.STORAGE_STALE_CHAIN_VERSION,
                f"target {target_id} lost its place while forwarding: now {where}",
            )
            raise ForwardFailed(error, delivered)
        successor = position.successor
        if successor is None:
            return None
        timeout = forward_timeout(deadline)
        if timeout <= 0:
            error = last_error or ThreeFSError(
                Code.RPC_DEADLINE_EXCEEDED, f"no time left to forward to target {successor.target_id}"
            )
            raise ForwardFailed(error, delivered)
        request, payload = await plan.build(successor, position.chain_version)  # our own store's errors
        try:
            address = state.routing.view.target_address(successor.target_id)
            reply, _ = await state.rpc.call(address, plan.spec, request, payload=payload, timeout_s=timeout)
        except ThreeFSError as exc:
            last_error = exc
            if exc.code not in _NOT_DELIVERED:
                delivered = True
            if exc.code == Code.STORAGE_STALE_UPDATE and plan.escalate():
                log.info(
                    "target %d cannot apply the update incrementally: sending the whole chunk",
                    successor.target_id,
                )
                continue
            if not exc.retryable:
                raise ForwardFailed(exc, delivered) from None
            state.metrics.forward_retries.inc()
            log.debug("forward to target %d failed (%s); retrying", successor.target_id, exc)
            mismatch = exc.code == Code.STORAGE_STALE_CHAIN_VERSION
            bound = max(0.05, min(1.0, deadline - trio.current_time()))
            await state.refresh_routing(state.routing.version if mismatch else None, timeout_s=bound)
            moved = state.current_position(chain_id, target_id)
            if moved is not None and moved.chain_version == position.chain_version:
                # The chain has not changed (yet): wait for mgmtd to notice a dead successor.
                await trio.sleep(max(0.0, min(pause, deadline - trio.current_time())))
                pause = min(2 * pause, _MAX_PAUSE_S)
            continue
        delivered = True
        if plan.accept(reply):
            return reply
        if plan.escalate():
            log.info(
                "target %d disagrees on the chunk's checksum: sending the whole chunk", successor.target_id
            )
            continue
        raise ForwardFailed(
            ThreeFSError(
                Code.STORAGE_CHECKSUM_MISMATCH,
                f"replicas disagree: target {successor.target_id} answered {reply}",
            ),
            delivered,
        )
