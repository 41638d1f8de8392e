"""`threefs up` / `status` / `down` on a real local cluster (processes detached, as a user runs
them), plus the errors that must stop `up` before it starts anything."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from threefs.local import ClusterDir, ClusterState
from threefs.local.processes import is_alive

NODE_KEYS = {"node_id", "role", "address", "pid", "state"}
CHAIN_KEYS = {"chain_id", "chain_version", "targets"}
TARGET_KEYS = {"target_id", "node_id", "public_state", "local_state"}


def threefs(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def status(data_dir: Path) -> dict:
    result = threefs("status", "--data-dir", str(data_dir), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def pids_by_node(data: dict) -> dict[int, int]:
    return {node["node_id"]: node["pid"] for node in data["nodes"]}


@pytest.mark.slow
def test_up_status_restart_admin_and_down(tmp_path):
    data_dir = tmp_path / "cluster"
    shape = ["--storage-nodes", "2", "--targets-per-node", "1", "--replicas", "2", "--chunk-size", "512K"]
    started: set[int] = set()
    try:
        result = threefs("up", "--data-dir", str(data_dir), *shape)
        assert result.returncode == 0, result.stderr
        assert "chains SERVING: 1/1" in result.stderr
        assert (data_dir / "cluster.toml").exists()

        data = status(data_dir)
        assert set(data) == {"nodes", "chains"}
        assert all(set(node) == NODE_KEYS for node in data["nodes"])
        assert [(n["node_id"], n["role"], n["state"]) for n in data["nodes"]] == [
            (1, "MGMTD", "ACTIVE"),
            (11, "STORAGE", "ACTIVE"),
            (12, "STORAGE", "ACTIVE"),
            (1001, "META", "ACTIVE"),
        ]
        pids = pids_by_node(data)
        started |= set(pids.values())
        assert all(is_alive(pid) for pid in pids.values())
        assert len(data["chains"]) == 1
        for chain in data["chains"]:
            assert set(chain) == CHAIN_KEYS
            assert {t["node_id"] for t in chain["targets"]} == {11, 12}
            for target in chain["targets"]:
                assert set(target) == TARGET_KEYS
                assert target["public_state"] == "SERVING"
        assert "chunk_size = 524288" in (data_dir / "launcher.toml").read_text()

        os.kill(pids[12], signal.SIGKILL)
        dead = status(data_dir)
        assert {n["node_id"]: n["state"] for n in dead["nodes"]}[12] == "STOPPED"

        result = threefs("up", "--data-dir", str(data_dir))  # restarts storage 12 only
        assert result.returncode == 0, result.stderr
        assert "storage-12: started" in result.stderr
        for name in ("mgmtd", "storage-11", "meta-1001"):
            assert f"{name}: running" in result.stderr
        again = pids_by_node(status(data_dir))
        started |= set(again.values())
        assert again[12] != pids[12] and is_alive(again[12])
        assert {k: v for k, v in again.items() if k != 12} == {k: v for k, v in pids.items() if k != 12}

        result = threefs("up", "--data-dir", str(data_dir), "--replicas", "1")
        assert result.returncode == 2 and "created with --replicas 2" in result.stderr

        result = threefs("admin", "list-nodes", "--data-dir", str(data_dir), "--json")
        assert result.returncode == 0, result.stderr
        assert {n["node_id"] for n in json.loads(result.stdout)["nodes"]} >= {11, 12, 1001}
    finally:
        result = threefs("down", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert "stopped 4 process(es)" in result.stdout
    assert started and not any(is_alive(pid) for pid in started)
    assert not list((data_dir / "run").glob("*.pid"))
    result = threefs("status", "--data-dir", str(data_dir), "--json")
    assert result.returncode == 3  # mgmtd unreachable
    assert {n["state"] for n in json.loads(result.stdout)["nodes"]} == {"STOPPED"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--replicas", "4"], "--replicas must be in [1, --storage-nodes (3)]"),
        (["--storage-nodes", "0"], "--storage-nodes: must be >= 1"),
        (["--chunk-size", "3M"], "--chunk-size must be a power of two"),
        (["--chunk-size", "lots"], "bad size 'lots'"),
        (["--kv", "mysql://x"], "--kv must be sqlite"),
    ],
)
def test_bad_options_fail_before_anything_starts(tmp_path, options, message):
    data_dir = tmp_path / "cluster"
    result = threefs("up", "--data-dir", str(data_dir), *options)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not data_dir.exists()


def test_a_recorded_port_in_use_is_reported_and_nothing_starts(tmp_path):
    cluster = ClusterDir(tmp_path / "cluster")
    cluster.path.mkdir()
    cluster.secret_file.write_text("s3cret\n")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        cluster.save_state(
            ClusterState(storage_nodes=1, replicas=1, mgmtd_port=port, storage_ports=[port + 1], meta_port=0)
        )
        result = threefs("up", "--data-dir", str(cluster.path))
    assert result.returncode == 2
    assert f"port {port} of mgmtd" in result.stderr and "in use" in result.stderr
    assert not list(cluster.run_dir.glob("*.pid"))


def test_status_and_down_of_a_directory_without_a_cluster(tmp_path):
    result = threefs("status", "--data-dir", str(tmp_path))
    assert result.returncode == 2 and "holds no local cluster" in result.stderr
    result = threefs("down", "--data-dir", str(tmp_path / "missing"))
    assert result.returncode == 2 and "no such directory" in result.stderr


def test_a_process_that_exits_at_start_is_reported_with_its_log(tmp_path):
    cluster = ClusterDir(tmp_path / "cluster")
    cluster.path.mkdir()
    cluster.secret_file.write_text("s3cret\n")
    ports = []
    for _ in range(3):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    cluster.save_state(
        ClusterState(
            storage_nodes=1, replicas=1, mgmtd_port=ports[0], storage_ports=[ports[1]], meta_port=ports[2]
        )
    )
    (cluster.path / "mgmtd" / "mgmtd.db").mkdir(parents=True)  # its KV file cannot be opened
    try:
        result = threefs("up", "--data-dir", str(cluster.path))
    finally:
        threefs("down", "--data-dir", str(cluster.path))
    assert result.returncode == 1
    assert "mgmtd exited during start-up" in result.stderr
    assert "unable to open database" in result.stderr  # the tail of its log
