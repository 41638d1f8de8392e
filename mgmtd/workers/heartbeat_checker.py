"""The heartbeat checker: fails nodes that have been silent for ``heartbeat_timeout_s``.

A failed node's status becomes FAILED and its storage targets' local state OFFLINE (one routing
change for all nodes found in one pass); the chain updater then moves those targets out of
service. The node returns to ACTIVE with its next accepted heartbeat.
"""

from __future__ import annotations

import logging

import msgspec
import trio

from mgmtd.components.routing_edit import RoutingEdit
from mgmtd.state import MgmtdState
from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import LocalTargetState, NodeStatus

__all__ = ["HeartbeatChecker"]

log = logging.getLogger("mgmtd.heartbeat")


class HeartbeatChecker:
    """``run_once`` checks every ACTIVE node once; ``run_forever`` repeats every
    ``updater_interval_s``."""

    def __init__(self, state: MgmtdState) -> None:
        self.state = state

    def _fail_silent(self, edit: RoutingEdit, now_ms: int) -> list[int]:
        state = self.state
        timeout_ms = state.config.heartbeat_timeout_ms
        failed = []
        for node in edit.nodes():
            if node.status != NodeStatus.ACTIVE:
                continue
            silent_ms = now_ms - state.live.last_heartbeat_ms(node)
            if silent_ms <= timeout_ms:
                continue
            failed.append(node.node_id)
            edit.put_node(msgspec.structs.replace(node, status=NodeStatus.FAILED))
            for target_id in state.node_targets(node.node_id):
                target = edit.target(target_id)
                if target is not None and target.local_state != LocalTargetState.OFFLINE:
                    edit.put_target(msgspec.structs.replace(target, local_state=LocalTargetState.OFFLINE))
            log.warning("node %d failed: no heartbeat for %d ms", node.node_id, silent_ms)
        return failed

    async def run_once(self) -> list[int]:
        """Fail the silent nodes; returns their ids (none when this mgmtd is not primary)."""
        state = self.state
        if not state.is_primary:
            return []
        now_ms = state.now_ms()
        committed = await state.mutate(lambda edit: self._fail_silent(edit, now_ms))
        if committed.result:
            state.wake_updater()
        return committed.result

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except ThreeFSError as exc:
                if exc.code != Code.MGMTD_NOT_PRIMARY:
                    log.warning("heartbeat check failed: %s", exc)
            await trio.sleep(self.state.config.updater_interval_s)
