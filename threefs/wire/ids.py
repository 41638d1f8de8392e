"""Numeric service ids: the one registry. An id is never renumbered or given a new meaning.

A service's method ids live in its own schema module (``threefs/wire/<service>.py``) next to its
own list of retired method ids; the service ids themselves are listed here.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ServiceId", "RETIRED_SERVICE_IDS"]


class ServiceId(IntEnum):
    """Every service threefs serves over RPC."""

    DEBUG = 1  # echo / sleep / fail, for tests and benchmarks
    MGMTD = 2
    META = 3
    STORAGE = 4


# Service ids that were once used and must never be given to a new service: id -> why retired.
RETIRED_SERVICE_IDS: dict[int, str] = {}
