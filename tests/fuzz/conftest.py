"""Fixtures of the fuzz tests: one real cluster per test module (``FuzzCluster``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fuzz_cluster import FuzzCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzCluster]:
    """A started ``FuzzCluster`` for the whole module, stopped after its last test."""
    fuzz = FuzzCluster(tmp_path_factory.mktemp("fuzz-cluster"))
    fuzz.start()
    try:
        yield fuzz
    finally:
        fuzz.close()
