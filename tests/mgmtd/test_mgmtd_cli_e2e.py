"""As an operator would: real threefs-mgmtd processes, driven by the real `threefs admin` command.

Two mgmtds share one sqlite file; the CLI is given both addresses, declares targets, generates a
balanced chain table, and lists it as a table and as JSON; after SIGKILL of the primary the same
commands work through the survivor. Wrong secrets and unreachable clusters fail clearly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from threefs.rpc import RpcClient
from threefs.wire import mgmtd as wire

ROOT = Path(__file__).resolve().parents[2]
LEASE_S = 1.5
SECRET = "e2e-cluster-secret"


def start_mgmtd(tmp_path: Path, node_id: int) -> tuple[subprocess.Popen, str]:
    config = tmp_path / f"mgmtd{node_id}.toml"
    config.write_text(
        f'cluster_id = "e2e"\nnode_id = {node_id}\nlisten_port = 0\n'
        f'kv_url = "sqlite:///{tmp_path}/mgmtd.db"\ncluster_secret_file = "secret"\n'
        f"lease_s = {LEASE_S}\n"
    )
    log = (tmp_path / f"mgmtd{node_id}.log").open("wb")
    env = {k: v for k, v in os.environ.items() if k != "THREEFS_CLUSTER_SECRET"}
    process = subprocess.Popen(
        [sys.executable, "-m", "mgmtd.main", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=log,
        cwd=ROOT,
        env=env,
    )
    line = process.stdout.readline().decode()
    if not line.startswith(f"mgmtd {node_id} listening on "):
        process.kill()
        pytest.fail(f"mgmtd {node_id} printed {line!r}: {(tmp_path / f'mgmtd{node_id}.log').read_text()}")
    return process, line.rsplit(" ", 1)[1].strip()


def admin(*args: str, cluster: Path | None = None, timeout_s: float = 15) -> subprocess.CompletedProcess:
    options = ["--cluster-config", str(cluster)] if cluster else []
    command = [sys.executable, "-m", "client.cli", "admin", *options, "--timeout", str(timeout_s), *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.fixture
def cluster(tmp_path):
    (tmp_path / "secret").write_text(SECRET + "\n")
    processes = []
    try:
        for node_id in (1, 2):
            processes.append(start_mgmtd(tmp_path, node_id))
        addresses = ", ".join(f'"{address}"' for _, address in processes)
        cluster_file = tmp_path / "cluster.toml"
        cluster_file.write_text(f'mgmtd_addresses = [{addresses}]\ncluster_secret_file = "secret"\n')
        yield cluster_file, processes
    finally:
        for process, _ in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def primary_address(addresses: list[str]) -> str:
    """The address the given mgmtds agree is primary (asked over RPC, as the CLI does)."""

    async def ask() -> str:
        with trio.fail_after(LEASE_S + 10):
            return await poll()

    async def poll() -> str:
        async with RpcClient(SECRET) as client:
            while True:
                answers = [
                    (await client.call(a, wire.GET_PRIMARY, wire.GetPrimaryRequest(), timeout_s=2))[0]
                    for a in addresses
                ]
                primaries = [a for a, answer in zip(addresses, answers, strict=True) if answer.is_primary]
                if len(primaries) == 1:
                    return primaries[0]
                await trio.sleep(0.1)

    return trio.run(ask)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_operator_builds_and_lists_a_chain_table(cluster):
    cluster_file, processes = cluster
    for node in (1, 2, 3):
        ok(
            admin(
                "create-targets",
                "--node-id",
                str(node),
                "--target-id",
                f"{node}01-{node}02",
                cluster=cluster_file,
            )
        )
    out = ok(admin("gen-chain-table", "1", "--replication", "3", cluster=cluster_file))
    assert "chain table 1 version 1 (2 chains of 3)" in out

    chains = json.loads(ok(admin("--json", "list-chains", cluster=cluster_file)))["chains"]
    assert [c["chain_id"] for c in chains] == [1, 2]
    for chain in chains:
        targets = [(t["target_id"], t["public_state"]) for t in chain["targets"]]
        assert len({tid // 100 for tid, _ in targets}) == 3  # three distinct nodes
        assert {state for _, state in targets} == {"SERVING"}
    table = ok(admin("list-chains", cluster=cluster_file))
    assert "SERVING" in table and table.count("\n") >= 3
    tables = json.loads(ok(admin("list-chain-tables", "--json", cluster=cluster_file)))["tables"]
    assert [(t["table_id"], t["version"], t["chain_ids"]) for t in tables] == [(1, 1, [1, 2])]

    # Kill the primary: the CLI finds the other one, which took over with the same routing info.
    primary = primary_address([address for _, address in processes])
    victim = next(process for process, address in processes if address == primary)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    started = time.monotonic()
    after = json.loads(ok(admin("--json", "list-chains", cluster=cluster_file)))["chains"]
    assert [c["chain_id"] for c in after] == [1, 2]
    assert time.monotonic() - started < LEASE_S + 10
    assert primary_address([address for process, address in processes if process is not victim]) != primary


def test_wrong_secret_and_unreachable_cluster_fail_clearly(cluster, tmp_path):
    cluster_file, processes = cluster
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-secret")
    address = processes[0][1]
    result = admin("--mgmtd", address, "--secret-file", str(wrong), "list-chains")
    assert result.returncode != 0
    assert "RPC_AUTH_FAILED" in result.stderr and "Traceback" not in result.stderr
    result = admin("--mgmtd", "127.0.0.1:1", "--secret-file", str(wrong), "list-chains", timeout_s=2)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr and "127.0.0.1:1" in result.stderr
