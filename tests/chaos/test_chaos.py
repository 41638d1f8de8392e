"""The short chaos run of CI: a real cluster (3 mgmtd, 2 meta, 5 storage nodes of 2 targets,
replication 3), a verifying workload through the library and a FUSE mount, and every kind of
fault at least once, disk fills included (each storage node on its own tmpfs). Nothing
acknowledged may be lost (see tests/chaos/run.py)."""

from __future__ import annotations

import pytest
import trio

from threefs.testing.mount import fuse_unavailable

from .faults import KINDS
from .netns import netns_unavailable
from .run import print_report, run_chaos


# fuse_unavailable also asks for root, which namespaces and tmpfs disks need too
@pytest.mark.skipif(fuse_unavailable() is not None, reason=fuse_unavailable() or "")
def test_short_chaos_run_loses_nothing_acknowledged(tmp_path):
    use_netns = netns_unavailable() is None
    kinds = [k for k in KINDS if use_netns or k != "cut_storage"]
    report = trio.run(
        lambda: run_chaos(tmp_path, duration_s=45.0, seed=1, use_netns=use_netns, min_faults=len(kinds))
    )
    print_report(report)
    summary = report.summary()
    assert summary["data_lost_files"] == 0 and summary["corrupt_reads"] == 0, report.files_lost[:10]
    assert not report.unrecovered and not report.fsck_problems and not report.crashed, summary
    assert set(summary["faults_by_kind"]) == set(kinds)
    assert report.files_acked_library > 0 and report.files_acked_fuse > 0
    assert report.bytes_verified > 0
    assert report.ok
