"""The chain updater: recomputes every chain's public states from its targets' local states.

For each chain it takes each target's effective local state (OFFLINE when its node is FAILED,
DISABLED or unknown, when the target was offlined by an admin, or when the node stopped
reporting it), applies ``chain_rules.apply_update`` (which leaves chains in their creation
grace period alone, until every target has reported the chain's version), and keeps the targets'
``public_state`` in step. All chains changed in one pass are committed together, bumping the
routing version once.
"""

from __future__ import annotations

import logging

from mgmtd.components.chain_states import update_chain
from mgmtd.components.routing_edit import RoutingEdit
from mgmtd.state import MgmtdState
from threefs.errors import Code, ThreeFSError

__all__ = ["ChainUpdater"]

log = logging.getLogger("mgmtd.chains")


class ChainUpdater:
    """``run_once`` updates every chain once; ``run_forever`` repeats every
    ``updater_interval_s``, or sooner when a heartbeat or the checker changed a state."""

    def __init__(self, state: MgmtdState) -> None:
        self.state = state

    def _update_all(self, edit: RoutingEdit, now_ms: int) -> list[int]:
        grace_ms = self.state.config.chain_grace_ms
        reports = self.state.live.target_reports
        reported = {target_id: report.chain_version for target_id, report in reports.items()}
        changed = []
        for chain in list(edit.chains()):
            # The creation grace is for targets that have not yet reported this chain; once all
            # of its targets have reported its current version, a failure is acted on at once
            # (a node that dies right after `threefs up` must not stall writes for the rest of
            # the grace period).
            everyone_reported = all(
                reported.get(t.target_id, 0) >= chain.chain_version for t in chain.targets
            )
            updated = update_chain(edit, chain, now_ms, 0 if everyone_reported else grace_ms, reported)
            if updated is not None:
                changed.append(chain.chain_id)
                states = ", ".join(f"{t.target_id}:{t.public_state.name}" for t in updated.targets)
                log.info("chain %d version %d: %s", chain.chain_id, updated.chain_version, states)
        return changed

    async def run_once(self) -> list[int]:
        """Update every chain; returns the ids of the chains that changed (none when this mgmtd
        is not primary)."""
        state = self.state
        if not state.is_primary:
            return []
        now_ms = state.now_ms()
        committed = await state.mutate(lambda edit: self._update_all(edit, now_ms))
        return committed.result

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except ThreeFSError as exc:
                if exc.code != Code.MGMTD_NOT_PRIMARY:
                    log.warning("chain update failed: %s", exc)
            await self.state.wait_updater_wakeup(self.state.config.updater_interval_s)
