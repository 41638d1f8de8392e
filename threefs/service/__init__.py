"""What every threefs server process shares: one-line logs, the metrics endpoint, config dumps.

``threefs-mgmtd``, ``threefs-storage`` and ``threefs-meta`` use these so that logs,
``--dump-config`` and ``GET /metrics`` look the same on every node; ``threefs.service.launch``
is their shared ``main()``.
"""

from threefs.service.logs import LogfmtFormatter, configure_logging
from threefs.service.metrics_http import serve_metrics
from threefs.service.toml_dump import dump_toml

__all__ = ["LogfmtFormatter", "configure_logging", "dump_toml", "serve_metrics"]
