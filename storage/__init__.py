"""storage: the storage service (docs/storage.md): targets and their chunk stores, CRAQ chain
replication, reads, resync. ``storage.app.StorageApp`` runs a node, ``storage.main`` is the
``threefs-storage`` command; the layers are ``service`` -> ``ops`` -> ``components`` / ``store``,
with periodic loops in ``workers``."""
