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
