"""bench/meta.py runs (briefly, sqlite, 1 and 2 clients) and ends with its JSON record, so it
never rots. This checks that it works and reports its keys, not how fast anything is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_meta_benchmark_reports_its_figures(tmp_path):
    argv = ["bench/meta.py", "--seconds", "0.2", "--clients", "1,2", "--engines", "sqlite"]
    result = subprocess.run(
        [sys.executable, *argv, "--out", str(tmp_path / "m.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    record = json.loads(lines[-1])
    assert len(lines) > 2 and record == json.loads((tmp_path / "m.json").read_text())
    for clients in (1, 2):
        for op in ("create", "stat", "list", "unlink"):
            rate = record[f"sqlite_{clients}_clients_{op}_per_s"]
            assert rate > 0, op
            kv = record[f"sqlite_{clients}_clients_kv_txn_per_s"]
            assert record[f"sqlite_{clients}_clients_{op}_ratio_to_kv"] == pytest.approx(rate / kv, abs=0.002)
        assert record[f"raw_socket_{clients}_clients_per_s"] > 0
        assert 0 < record[f"raw_socket_{clients}_clients_server_cores"] <= 1.5
