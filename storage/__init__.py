"""storage: targets, chunk engine, CRAQ chain replication and resync. Arrives with issue 4."""
