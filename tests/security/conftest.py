"""Fixtures of the security tests (defined in security_cluster.py)."""

from security_cluster import cluster

__all__ = ["cluster"]
