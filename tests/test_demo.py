"""`make run` runs threefs.demo; run it here too so it never goes stale."""

import subprocess
import sys


def test_demo_runs_and_passes_its_checks(tmp_path):
    cmd = [sys.executable, "-m", "threefs.demo", "--data-dir", str(tmp_path / "data")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo: all checks passed" in result.stdout
    assert "total 400" in result.stdout
    assert (tmp_path / "data" / "kv.db").exists()


def test_cluster_demo_runs_twice_on_one_data_dir(tmp_path):
    """`make run` (client.demo): core demo, then a real mgmtd + 3 storage processes, a file written
    and read back, a node SIGKILLed; a second run on the same directory works too."""
    cmd = [sys.executable, "-m", "client.demo", "--data-dir", str(tmp_path / "data")]
    for _ in range(2):
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "sha256" in result.stdout and "matches" in result.stdout
        assert "the file still reads back intact" in result.stdout
        assert result.stdout.rstrip().endswith("demo: cluster checks passed")
