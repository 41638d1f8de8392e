"""meta: the stateless POSIX metadata service over the transactional KV store. Arrives with issue 5."""
