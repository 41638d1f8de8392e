"""Periodic loops of a storage node, each with ``run_once()`` and ``run_forever()``."""

from storage.workers.heartbeat import Heartbeater
from storage.workers.resync import Resyncer, SyncJob
from storage.workers.routing import RoutingRefresher

__all__ = ["Heartbeater", "Resyncer", "RoutingRefresher", "SyncJob"]
