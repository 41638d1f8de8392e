"""client: routing cache, meta/storage clients, the FileSystem API, FUSE and the CLI. Arrives with issue 6."""
