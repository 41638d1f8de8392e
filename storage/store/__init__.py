"""Chunk stores: the per-target interface and its implementations."""
