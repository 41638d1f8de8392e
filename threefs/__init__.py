"""threefs shared core: errors, config, wire schemas, RPC, KV engines.

``threefs.connect(...)`` is the public entry to the file system; it imports the client lazily so
that the core never depends on it at import time.
"""

from __future__ import annotations

from typing import Any

from threefs.errors import Code, ThreeFSError

__all__ = ["Code", "ThreeFSError", "connect", "__version__"]
__version__ = "0.1.0"


def connect(*args: Any, **kwargs: Any) -> Any:
    """Connect to a threefs cluster and return a ``client.FileSystem`` (lazy import)."""
    import importlib

    try:
        client = importlib.import_module("client")
        factory = client.connect
    except (ImportError, AttributeError):
        raise ThreeFSError(Code.NOT_IMPLEMENTED, "the client library is not available yet") from None
    return factory(*args, **kwargs)
