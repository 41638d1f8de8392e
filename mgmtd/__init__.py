"""mgmtd: the cluster manager (membership, routing info, chain states, primary lease).

``threefs-mgmtd --config FILE`` (``mgmtd.main``) runs one; ``MgmtdApp`` runs one in-process.
Layers: ``service`` (thin RPC handlers) -> ``ops`` -> ``state``, ``store`` and ``components``;
periodic loops in ``workers``. See docs/mgmtd.md.
"""
