"""`make run` runs threefs.demo; run it here too so it never goes stale."""

import importlib.util
import subprocess
import sys
from pathlib import Path


def test_demo_runs_and_passes_its_checks(tmp_path):
    cmd = [sys.executable, "-m", "threefs.demo", "--data-dir", str(tmp_path / "data")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo: all checks passed" in result.stdout
    assert "total 400" in result.stdout
    assert (tmp_path / "data" / "kv.db").exists()


def test_cluster_demo_runs_twice_on_one_data_dir(tmp_path):
    """`make run` (client.demo): `threefs up` (mounted where FUSE and the mount command exist),
    files through the mount and the library; a second run reuses the running cluster."""
    data_dir = tmp_path / "data"
    cmd = [sys.executable, "-m", "client.demo", "--data-dir", str(data_dir), "--storage-nodes", "1"]
    mountable = Path("/dev/fuse").exists() and importlib.util.find_spec("client.cli.mount") is not None
    cmd += ["--mount", str(tmp_path / "mnt")] if mountable else ["--no-mount"]
    try:
        for _ in range(2):
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "library: read several-chunks.bin" in result.stdout and "matches" in result.stdout
            assert ("mount: read from-library.bin back, matches" in result.stdout) == mountable
            assert "demo: all checks passed" in result.stdout
            assert f"down --data-dir {data_dir}" in result.stdout
    finally:
        down = [sys.executable, "-m", "client.cli", "down", "--data-dir", str(data_dir)]
        subprocess.run(down, capture_output=True, timeout=60)
