"""``bench/compare.py`` runs (briefly, ``--quick``) and reports the same figures for every system, so
the comparison with the peers keeps working. It checks keys and arithmetic, not speeds.

The passthrough/local run needs only what ``make install`` brings (fio, fs_mark, FUSE, root).
The GlusterFS run needs the Debian packages (``bench/peers/glusterfs.py install``, about 12 s
from the apt cache); it is skipped where they are not installed, and runs next to threefs so the
ratios get checked too.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
METRICS = (
    "seq_write_mib_s",
    "seq_read_mib_s",
    "rand_read_4k_iops",
    "rand_write_4k_iops",
    "rand_read_4k_8jobs_iops",
    "creates_per_s",
    "stats_per_s",
    "unlinks_per_s",
    "creates_8p_per_s",
    "stats_8p_per_s",
    "unlinks_8p_per_s",
    "fs_mark_fsync_files_per_s",
    "listdir_entries_per_s",
    "list_stat_entries_per_s",
    "native_write_mib_s",
    "native_read_mib_s",
)


def compare(tmp_path: Path, systems: str) -> dict:
    missing = [tool for tool in ("fio", "fs_mark", "fusermount3", "ss") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (make install)")
    if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
        pytest.skip("mounts FUSE file systems: needs /dev/fuse and root")
    out = tmp_path / "compare.json"
    command = [sys.executable, "bench/compare.py", "--quick", "--systems", systems, "--out", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) > len(METRICS), "a table must come before the JSON record"
    record = json.loads(lines[-1])
    assert json.loads(out.read_text()) == record
    assert record["bench"] == "compare"
    assert record["errors"] == {}
    assert list(record["systems"]) == systems.split(",")
    for name, figures in record["systems"].items():
        assert tuple(figures) == METRICS, name  # the same keys, in the same order, for every system
        for key, value in figures.items():
            assert value is not None and value > 0, f"{name} {key}"
    assert isinstance(record["caches_dropped"], bool)
    return record


@pytest.mark.slow
def test_compare_reports_the_same_figures_for_every_system(tmp_path):
    record = compare(tmp_path, "passthrough,local")
    assert set(record["ratios"]) == set(METRICS)
    assert all(ratio is None for ratio in record["ratios"].values())  # no threefs/glusterfs pair
    assert record["targets"]["seq_write_mib_s"] == {"target": 2.0, "ratio": None, "met": None}
    assert record["listening"] == {"passthrough": [], "local": []}


@pytest.mark.slow
def test_compare_with_glusterfs_computes_the_ratios(tmp_path):
    if shutil.which("glusterd") is None:
        pytest.skip("GlusterFS is not installed (bench/peers/glusterfs.py install)")
    record = compare(tmp_path, "threefs,glusterfs")
    ours, theirs = record["systems"]["threefs"], record["systems"]["glusterfs"]
    for key in METRICS:
        assert record["ratios"][key] == pytest.approx(ours[key] / theirs[key], rel=0.01, abs=0.001)
    creates = record["targets"]["creates_per_s"]
    assert creates["met"] == (creates["ratio"] >= creates["target"])
    native = record["targets"]["native_read_vs_mount_read"]
    assert native["ratio"] == pytest.approx(ours["native_read_mib_s"] / ours["seq_read_mib_s"], rel=0.01)
    for name in ("threefs", "glusterfs"):
        addresses = [entry.split()[1] for entry in record["listening"][name]]
        assert addresses and all(address.startswith("127.0.0.1:") for address in addresses), name
