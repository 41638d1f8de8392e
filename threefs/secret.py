"""The cluster secret: where every process (services, CLI, clients) reads it from.

Order: a file named by the config's ``cluster_secret_file`` key always wins (a relative path is
relative to the directory of the config file that names it); otherwise the environment variable
``THREEFS_CLUSTER_SECRET``. A file that names a secret means that file: a stray environment
variable cannot silently change which cluster a process joins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from threefs.errors import Code, ThreeFSError

__all__ = ["SECRET_ENV", "cluster_secret", "read_secret_file", "resolve_beside"]

SECRET_ENV = "THREEFS_CLUSTER_SECRET"


def resolve_beside(value: str, config_path: str | Path | None) -> str:
    """``value`` as an absolute path; a relative one is taken relative to ``config_path``'s
    directory (or the current directory when there is no config file). "" stays ""."""
    if not value:
        return value
    path = Path(value)
    if not path.is_absolute():
        base = Path(config_path).parent if config_path is not None else Path.cwd()
        path = base / path
    return str(path.absolute())


def read_secret_file(path: str | Path) -> bytes:
    """The secret stored in ``path``, surrounding whitespace stripped.

    Raises ``ThreeFSError(CONFIG_INVALID)`` when the file cannot be read or holds only whitespace.
    """
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ThreeFSError(
            Code.CONFIG_INVALID, f"{path}: cannot read the cluster secret: {exc.strerror}"
        ) from None
    if not secret:
        raise ThreeFSError(Code.CONFIG_INVALID, f"{path}: the cluster secret file is empty")
    return secret


def cluster_secret(secret_file: str, environ: Mapping[str, str] | None = None) -> bytes:
    """The secret from ``secret_file`` when given, else from ``THREEFS_CLUSTER_SECRET``.

    Raises ``ThreeFSError(CONFIG_INVALID)`` when the file is unusable, or when no file is given
    and the variable is unset or empty.
    """
    if secret_file:
        return read_secret_file(secret_file)
    environment = os.environ if environ is None else environ
    text = environment.get(SECRET_ENV, "").strip()
    if not text:
        raise ThreeFSError(
            Code.CONFIG_INVALID,
            f"no cluster secret: set 'cluster_secret_file' in the config or the {SECRET_ENV} variable",
        )
    return text.encode()
