"""mgmtd's periodic loops; each has ``run_once()`` (what tests call) and ``run_forever()``."""

from mgmtd.workers.chain_updater import ChainUpdater
from mgmtd.workers.heartbeat_checker import HeartbeatChecker
from mgmtd.workers.lease_keeper import LeaseKeeper

__all__ = ["ChainUpdater", "HeartbeatChecker", "LeaseKeeper"]
