"""The benchmarks run (briefly) and end with their JSON record, so they never rot.

This checks that they work and report the agreed keys, not how fast anything is.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_bench(*args: str) -> dict:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) > 2, "a table must come before the JSON record"
    return json.loads(lines[-1])


@pytest.mark.slow
def test_rpc_benchmark_reports_its_figures(tmp_path):
    record = run_bench(
        "bench/rpc.py", "--duration", "0.3", "--rounds", "1", "--out", str(tmp_path / "r.json")
    )
    for key in ("bulk_rpc_mib_s", "bulk_raw_socket_mib_s", "bulk_ratio", "small_rpc_per_s"):
        assert record[key] > 0, key
    assert record["bulk_ratio"] == pytest.approx(
        record["bulk_rpc_mib_s"] / record["bulk_raw_socket_mib_s"], 0.01
    )


@pytest.mark.slow
@pytest.mark.postgres
def test_kv_benchmark_reports_its_figures():
    record = run_bench("bench/kv.py", "--seconds", "0.3")
    for engine in ("sqlite", "postgres"):
        assert record[f"{engine}_1_client_txn_per_s"] > 0
        assert record[f"{engine}_8_clients_txn_per_s"] > 0


@pytest.mark.slow
def test_storage_benchmark_reports_its_figures(tmp_path):
    record = run_bench(
        "bench/storage.py",
        "--duration",
        "0.3",
        "--rounds",
        "1",
        "--file-mib",
        "4",
        "--out",
        str(tmp_path / "s.json"),
    )
    for key in ("read_r1_1mib_mib_s", "write_r3_4mib_mib_s", "raw_socket_mib_s", "raw_disk_read_mib_s"):
        assert record[key] > 0, key
    assert record["read_r1_ratio_to_socket"] == pytest.approx(
        max(record["read_r1_1mib_mib_s"], record["read_r1_4mib_mib_s"]) / record["raw_socket_mib_s"], 0.01
    )


@pytest.mark.slow
def test_fuse_benchmark_reports_its_figures(tmp_path):
    missing = [tool for tool in ("fio", "fs_mark", "fusermount3") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/install-system.sh)")
    if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
        pytest.skip("mounts FUSE file systems: needs /dev/fuse and root")
    record = run_bench(
        "bench/fuse.py",
        *("--size-mib", "4", "--seconds", "0.3", "--files", "30", "--rounds", "1"),
        *("--out", str(tmp_path / "f.json")),
    )
    for key in ("seq_write_mib_s", "seq_read_mib_s", "rand_read_4k_iops", "creates_per_s", "stats_per_s"):
        for prefix in ("", "passthrough_", "local_"):
            assert record[prefix + key] > 0, prefix + key
    assert record["seq_read_ratio_to_passthrough"] == pytest.approx(
        record["seq_read_mib_s"] / record["passthrough_seq_read_mib_s"], 0.01
    )
