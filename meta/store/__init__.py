"""How meta's records live in the KV engine: inodes, entries, sessions, GC jobs, the id allocator."""
