"""`threefs admin status`: the summary rules on hand-made routing info, the command against a
fake mgmtd (text, JSON keys, an unreachable mgmtd), and a real local cluster that loses a
storage node to SIGKILL."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
import trio
from mgmtd_fake import SECRET, FakeMgmtd, ThreadedFake, unused_address

from client.cli import main
from client.cli.common import SECRET_ENV
from client.cli.status import chain_state, render, summarize
from threefs.testing.cluster import LocalCluster
from threefs.wire import mgmtd as wire
from threefs.wire.mgmtd import ChainTarget, LocalTargetState, NodeStatus, NodeType, PublicTargetState

ROOT = Path(__file__).resolve().parents[2]
SERVING, LASTSRV, SYNCING, OFFLINE = (
    PublicTargetState.SERVING,
    PublicTargetState.LASTSRV,
    PublicTargetState.SYNCING,
    PublicTargetState.OFFLINE,
)
UPTODATE, ONLINE = LocalTargetState.UPTODATE, LocalTargetState.ONLINE

TOP_KEYS = {
    "health",
    "cluster_id",
    "routing_version",
    "mgmtd",
    "nodes",
    "chains",
    "targets",
    "capacity",
    "failures",
}
FAILURE_KEYS = {"kind", "id", "state", "node_id", "chain_id", "since_ms", "detail"}
PRIMARY = [{"address": "m:1", "state": "PRIMARY", "detail": ""}]


def _node(node_id: int, node_type: NodeType, status: NodeStatus = NodeStatus.ACTIVE, last_ms: int = 0):
    return wire.NodeInfo(
        node_id=node_id,
        node_type=node_type,
        status=status,
        addresses=[f"10.0.0.{node_id % 256}:8000"],
        last_heartbeat_ms=last_ms,
    )


def _target(target_id: int, chain_id: int, public, local=UPTODATE, used: int = 0, capacity: int = 0):
    return wire.TargetInfo(
        target_id=target_id,
        node_id=target_id // 100,
        chain_id=chain_id,
        public_state=public,
        local_state=local,
        used_bytes=used,
        capacity_bytes=capacity,
    )


def degraded_routing() -> wire.RoutingInfo:
    """Storage 11 ACTIVE, 12 FAILED (last heard at 5000 ms), 13 DISABLED (at 3000 ms); meta 1001
    ACTIVE; a FAILED client. Chain 1 = 1101 SERVING, 1201 OFFLINE (DEGRADED); chain 2 = 1302
    LASTSRV, 1202 OFFLINE (UNAVAILABLE); chain 3 = 1103 SERVING, 1105 SYNCING (DEGRADED);
    target 1104 in no chain. Target ``n`` is on node ``n // 100``."""
    nodes = {
        11: _node(11, NodeType.STORAGE, last_ms=9000),
        12: _node(12, NodeType.STORAGE, NodeStatus.FAILED, 5000),
        13: _node(13, NodeType.STORAGE, NodeStatus.DISABLED, 3000),
        1001: _node(1001, NodeType.META, last_ms=9000),
        5000: _node(5000, NodeType.CLIENT, NodeStatus.FAILED, 100),
    }
    targets = {
        t.target_id: t
        for t in (
            _target(1101, 1, SERVING, used=30, capacity=100),
            _target(1201, 1, OFFLINE, LocalTargetState.OFFLINE, used=10, capacity=100),
            _target(1302, 2, LASTSRV, LocalTargetState.OFFLINE),
            _target(1202, 2, OFFLINE, LocalTargetState.OFFLINE),
            _target(1103, 3, SERVING, used=20, capacity=100),
            _target(1105, 3, SYNCING, ONLINE),
            _target(1104, 0, OFFLINE, ONLINE),
        )
    }
    chains = {
        1: wire.ChainInfo(
            chain_id=1, chain_version=4, targets=[ChainTarget(1101, SERVING), ChainTarget(1201, OFFLINE)]
        ),
        2: wire.ChainInfo(
            chain_id=2, chain_version=6, targets=[ChainTarget(1302, LASTSRV), ChainTarget(1202, OFFLINE)]
        ),
        3: wire.ChainInfo(
            chain_id=3, chain_version=2, targets=[ChainTarget(1103, SERVING), ChainTarget(1105, SYNCING)]
        ),
    }
    return wire.RoutingInfo(version=9, cluster_id="c", nodes=nodes, chains=chains, targets=targets)


def healthy_routing() -> wire.RoutingInfo:
    nodes = {n: _node(n, NodeType.STORAGE, last_ms=1) for n in (11, 12)}
    targets = {t: _target(t, 1, SERVING, used=1 << 30, capacity=1 << 40) for t in (1101, 1201)}
    chains = {1: wire.ChainInfo(chain_id=1, targets=[ChainTarget(1101, SERVING), ChainTarget(1201, SERVING)])}
    return wire.RoutingInfo(version=3, cluster_id="ok", nodes=nodes, chains=chains, targets=targets)


# ----------------------------------------------------------------------------- the rules


def test_chain_state_follows_the_replicas():
    def chain(*states):
        return wire.ChainInfo(chain_id=1, targets=[ChainTarget(i + 1, s) for i, s in enumerate(states)])

    assert chain_state(chain(SERVING, SERVING)) == "SERVING"
    assert chain_state(chain(SERVING, SYNCING, OFFLINE)) == "DEGRADED"
    assert chain_state(chain(LASTSRV, OFFLINE)) == "UNAVAILABLE"
    assert chain_state(chain()) == "UNAVAILABLE"


def test_summary_counts_states_capacity_and_lists_failures_in_order():
    data = summarize(degraded_routing(), PRIMARY, "m:1")
    assert set(data) == TOP_KEYS
    assert data["health"] == "UNAVAILABLE"  # chain 2 has no SERVING replica
    assert (data["cluster_id"], data["routing_version"]) == ("c", 9)
    assert data["mgmtd"] == {"primary": "m:1", "addresses": PRIMARY}
    assert data["nodes"]["total"] == 5
    assert data["nodes"]["by_role"] == {
        "MGMTD": {"ACTIVE": 0, "FAILED": 0, "DISABLED": 0},
        "META": {"ACTIVE": 1, "FAILED": 0, "DISABLED": 0},
        "STORAGE": {"ACTIVE": 1, "FAILED": 1, "DISABLED": 1},
        "CLIENT": {"ACTIVE": 0, "FAILED": 1, "DISABLED": 0},
    }
    assert data["chains"] == {"total": 3, "by_state": {"SERVING": 0, "DEGRADED": 2, "UNAVAILABLE": 1}}
    assert data["targets"] == {
        "total": 7,
        "in_no_chain": 1,
        "by_public_state": {"SERVING": 2, "LASTSRV": 1, "SYNCING": 1, "WAITING": 0, "OFFLINE": 3},
        "by_local_state": {"UPTODATE": 2, "ONLINE": 2, "OFFLINE": 3},
    }
    assert data["capacity"] == {  # the targets that report a capacity
        "total_bytes": 300,
        "used_bytes": 60,
        "free_bytes": 240,
        "reporting_targets": 3,
    }
    failures = data["failures"]
    assert all(set(f) == FAILURE_KEYS for f in failures)
    # Nodes, chains, targets; most recent first within a kind; the failed client is not listed.
    assert [(f["kind"], f["id"], f["state"], f["since_ms"]) for f in failures] == [
        ("node", 12, "FAILED", 5000),
        ("node", 13, "DISABLED", 3000),
        ("chain", 1, "DEGRADED", 5000),
        ("chain", 2, "UNAVAILABLE", 3000),  # the earliest of 1302 (node 13) and 1202 (node 12)
        ("chain", 3, "DEGRADED", None),
        ("target", 1201, "OFFLINE", 5000),
        ("target", 1202, "OFFLINE", 5000),
        ("target", 1302, "LASTSRV", 3000),
        ("target", 1105, "SYNCING", None),
    ]
    target = failures[5]
    assert (target["node_id"], target["chain_id"]) == (12, 1)
    assert target["detail"] == "local OFFLINE, node 12 (FAILED), chain 1"
    assert failures[1]["detail"] == "STORAGE 10.0.0.13:8000: disabled by an admin"
    assert failures[3]["detail"] == "version 6: 1302:LASTSRV 1202:OFFLINE"


def test_health_is_degraded_for_an_unreachable_mgmtd_and_ok_otherwise():
    assert summarize(healthy_routing(), PRIMARY, "m:1")["health"] == "OK"
    unreachable = [*PRIMARY, {"address": "m:2", "state": "UNREACHABLE", "detail": "x"}]
    assert summarize(healthy_routing(), unreachable, "m:1")["health"] == "DEGRADED"
    routing = healthy_routing()
    routing.targets[1201] = _target(1201, 1, SERVING, ONLINE)  # restarted, not yet WAITING: fine
    assert summarize(routing, PRIMARY, "m:1")["failures"] == []


def test_text_shows_every_section_and_cuts_long_failure_lists():
    text = render(summarize(degraded_routing(), PRIMARY, "m:1"), now_s=15.0)
    lines = text.splitlines()
    assert lines[0] == "cluster c: UNAVAILABLE  (routing version 9)"
    assert lines[1].split() == ["mgmtd", "m:1", "PRIMARY"]
    assert lines[3].split() == ["ROLE", "ACTIVE", "FAILED", "DISABLED"]
    assert ["STORAGE", "1", "1", "1"] in [line.split() for line in lines]
    assert "MGMTD" not in text.split("chains")[0]  # a role with no node is left out (but META)
    assert "chains    3: 2 DEGRADED, 1 UNAVAILABLE" in text
    assert "targets   7 (1 in no chain): public 2 SERVING, 1 LASTSRV, 1 SYNCING, 3 OFFLINE" in text
    assert "capacity  300 total, 60 used (20.0%), 240 free, from 3 target(s)" in text
    assert "FAILURES (9)" in text
    node_row = next(line for line in lines if line.startswith("node    12"))
    assert node_row.split()[2:5] == ["FAILED", "10.0s", "ago"]

    routing = degraded_routing()
    for n in range(30):  # 30 more failed storage nodes
        routing.nodes[100 + n] = _node(100 + n, NodeType.STORAGE, NodeStatus.FAILED)
    text = render(summarize(routing, PRIMARY, "m:1"))
    assert "FAILURES (39)" in text and "... and 19 more (--json lists every one)" in text
    assert render(summarize(healthy_routing(), PRIMARY, "m:1")).endswith("no failures")


# ----------------------------------------------------------------------------- the command


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    fake = FakeMgmtd(healthy_routing())
    with ThreadedFake(fake):
        yield fake


def test_status_command_text_and_json(capsys, fake):
    assert main(["admin", "--mgmtd", fake.address, "--timeout", "5", "status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cluster ok: OK  (routing version 3)")
    assert f"{fake.address} PRIMARY" in out and out.rstrip().endswith("no failures")

    dead = unused_address()
    argv = ["admin", "--mgmtd", fake.address, "--mgmtd", dead, "--timeout", "5", "status", "--json"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == TOP_KEYS and data["health"] == "DEGRADED"
    addresses = data["mgmtd"]["addresses"]
    assert [(m["address"], m["state"]) for m in addresses] == [
        (fake.address, "PRIMARY"),
        (dead, "UNREACHABLE"),
    ]
    assert "RPC_CONNECT_FAILED" in addresses[1]["detail"] or "DEADLINE" in addresses[1]["detail"]
    assert data["capacity"]["total_bytes"] == 2 << 40 and data["capacity"]["used_bytes"] == 2 << 30


def test_status_json_keys_are_documented():
    docs = (ROOT / "docs" / "cli.md").read_text()
    section = docs.split("### Status", 1)[1].split("\n### ", 1)[0]
    documented = set(re.findall(r'"([a-z_]+)"', section))
    assert TOP_KEYS | FAILURE_KEYS <= documented
    assert {"by_role", "by_state", "by_public_state", "by_local_state", "in_no_chain"} <= documented
    assert {"total_bytes", "used_bytes", "free_bytes", "reporting_targets", "primary"} <= documented


# ----------------------------------------------------------------------------- a real cluster


@pytest.mark.slow
async def test_status_of_a_real_cluster_before_and_after_a_storage_node_dies(tmp_path, capsys):
    cluster = LocalCluster(
        tmp_path,
        storage_nodes=3,
        replication=3,
        mgmtd_config_extra="chain_grace_s = 1.0\n",  # let the chain rules act at once
    )
    async with cluster:
        (cluster.dir / "cluster.toml").write_text(
            f'mgmtd_addresses = ["{cluster.mgmtd_address}"]\ncluster_secret_file = "secret"\n'
        )
        base = ["admin", "--data-dir", str(cluster.dir), "--timeout", "10", "status"]

        async def status(*extra: str) -> str:
            capsys.readouterr()
            code = await trio.to_thread.run_sync(main, [*base, *extra])
            captured = capsys.readouterr()
            assert code == 0, captured.err
            return captured.out

        async def wait_json(predicate, what: str) -> dict:
            data: dict = {}
            with trio.move_on_after(30):
                while True:
                    data = json.loads(await status("--json"))
                    if predicate(data):
                        return data
                    await trio.sleep(0.3)
            pytest.fail(f"status never showed {what}: {data}")

        data = await wait_json(lambda d: d["capacity"]["reporting_targets"] == 3, "3 reporting targets")
        assert data["health"] == "OK" and data["failures"] == []
        assert data["nodes"]["by_role"]["STORAGE"] == {"ACTIVE": 3, "FAILED": 0, "DISABLED": 0}
        assert data["nodes"]["by_role"]["META"]["ACTIVE"] == 1
        assert data["chains"]["by_state"] == {"SERVING": 1, "DEGRADED": 0, "UNAVAILABLE": 0}
        assert data["targets"]["by_public_state"]["SERVING"] == 3
        assert data["capacity"]["total_bytes"] > 0
        assert data["mgmtd"]["addresses"] == [
            {"address": cluster.mgmtd_address, "state": "PRIMARY", "detail": ""}
        ]
        assert "no failures" in await status()

        victim = cluster.processes["storage-13"].process
        victim.send_signal(signal.SIGKILL)
        await trio.to_thread.run_sync(victim.wait)
        data = await wait_json(
            lambda d: (
                d["chains"]["by_state"]["DEGRADED"] == 1 and d["nodes"]["by_role"]["STORAGE"]["FAILED"] == 1
            ),
            "node 13 FAILED and its chain DEGRADED",
        )
        assert data["health"] == "DEGRADED"
        kinds = {(f["kind"], f["id"]): f for f in data["failures"]}
        assert kinds[("node", 13)]["state"] == "FAILED" and kinds[("node", 13)]["since_ms"] > 0
        assert kinds[("target", 1301)]["node_id"] == 13
        assert kinds[("chain", cluster.chain_ids[0])]["state"] == "DEGRADED"
        text = await status()
        assert "cluster local: DEGRADED" in text
        node_row = next(line for line in text.splitlines() if line.startswith("node    13"))
        assert "FAILED" in node_row and "ago" in node_row and "no heartbeat" in node_row
