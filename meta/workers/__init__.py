"""Periodic loops of a meta server, each with ``run_once()`` and ``run_forever()``."""

from meta.workers.gc import GcWorker
from meta.workers.heartbeat import Heartbeater
from meta.workers.length import LengthKeeper
from meta.workers.sessions import SessionPruner

__all__ = ["GcWorker", "Heartbeater", "LengthKeeper", "SessionPruner"]
