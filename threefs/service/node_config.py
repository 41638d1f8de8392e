"""Range checks that every service's config shares (identity, listening, metrics, logging).

A service's ``Section.__post_init__`` calls ``check_node_settings(self)`` for the fields below and
then checks its own; every failure is ``ThreeFSError(CONFIG_INVALID)`` naming the key, the rule and
the value (the loader adds the file).
"""

from __future__ import annotations

import socket
from typing import Any

from threefs.errors import Code, ThreeFSError
from threefs.rpc.transport import format_address

__all__ = ["LOG_LEVELS", "U32_MAX", "advertise_address", "bad_setting", "check_node_settings"]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
U32_MAX = 2**32 - 1
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def bad_setting(key: str, rule: str, value: object) -> ThreeFSError:
    """The error for ``key`` breaking ``rule``: "key 'k' must be RULE, not VALUE"."""
    return ThreeFSError(Code.CONFIG_INVALID, f"key '{key}' must be {rule}, not {value!r}")


def check_node_settings(config: Any) -> None:
    """Check ``cluster_id`` (1-64 characters), ``node_id`` (1 .. 2^32-1), ``listen_host``
    (non-empty), ``listen_port`` (0-65535), ``advertise_address`` ("" or HOST:PORT),
    ``metrics_port`` (-1 off, 0 any, or a port) and ``log_level``."""
    if not config.cluster_id or len(config.cluster_id) > 64:
        raise bad_setting("cluster_id", "1 to 64 characters", config.cluster_id)
    if not 1 <= config.node_id <= U32_MAX:
        raise bad_setting("node_id", "set, in [1, 2^32)", config.node_id)
    if not config.listen_host:
        raise bad_setting("listen_host", "a host name or address", config.listen_host)
    if not 0 <= config.listen_port <= 65535:
        raise bad_setting("listen_port", "in [0, 65535]", config.listen_port)
    if config.advertise_address and ":" not in config.advertise_address:
        raise bad_setting("advertise_address", '"" or HOST:PORT', config.advertise_address)
    if not -1 <= config.metrics_port <= 65535:
        raise bad_setting("metrics_port", "-1 (off), 0 (any free port) or a port", config.metrics_port)
    if config.log_level.upper() not in LOG_LEVELS:
        raise bad_setting("log_level", f"one of {', '.join(LOG_LEVELS)}", config.log_level)


def advertise_address(config: Any, port: int) -> str:
    """The address other nodes are told: ``config.advertise_address`` if set, else the listen
    host (this host's name when listening on a wildcard) and the bound ``port``."""
    if config.advertise_address:
        return config.advertise_address
    host = config.listen_host
    if host in _WILDCARD_HOSTS:
        host = socket.gethostname()
    return format_address((host, port))
