"""A real local cluster for the security tests (one storage node, one meta server; the fixture is
registered in conftest.py, shared by the module that asks for it), and helpers to run the admin
CLI with the cluster secret or a token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from client.cli import main
from threefs.testing.cluster import LocalCluster

CHUNK_SIZE = 64 << 10


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Meta and storage refresh their user directories every ``routing_refresh_s`` (1 s here)."""
    local = LocalCluster(
        tmp_path_factory.mktemp("security-cluster"),
        storage_nodes=1,
        replication=1,
        chunk_size=CHUNK_SIZE,
        meta_config_extra=f"default_chunk_size = {CHUNK_SIZE}\n",
    )
    trio.run(local.start)
    try:
        yield local
    finally:
        trio.run(local.stop)


def as_cluster(cluster: LocalCluster) -> list[str]:
    """Connection options that authenticate with the cluster secret."""
    return ["--mgmtd", cluster.mgmtd_address, "--secret-file", str(cluster.secret_file), "--timeout", "10"]


def as_user(cluster: LocalCluster, token_file: Path) -> list[str]:
    """Connection options that authenticate with the token in ``token_file``."""
    return ["--mgmtd", cluster.mgmtd_address, "--token-file", str(token_file), "--timeout", "10"]


def admin(capsys: pytest.CaptureFixture[str], auth: list[str], *argv: str) -> tuple[int, str, str]:
    """``threefs admin ARGV`` with ``auth``: (exit status, stdout, stderr)."""
    status = main(["admin", *argv, *auth])
    captured = capsys.readouterr()
    return status, captured.out, captured.err
