"""`threefs admin ...` through ``main(argv)`` against a fake mgmtd served from a thread (the CLI
runs its own ``trio.run``, so these tests are sync)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mgmtd_fake import SECRET, FakeMgmtd, ThreadedFake, unused_address

from client.cli import main
from client.cli.common import SECRET_ENV, format_age, format_bytes, render_table
from threefs.errors import Code, ThreeFSError
from threefs.wire import mgmtd as wire

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    fake = FakeMgmtd()
    with ThreadedFake(fake):
        yield fake


def admin(fake: FakeMgmtd, *argv: str) -> int:
    return main(["admin", "--mgmtd", fake.address, "--timeout", "5", *argv])


def run_ok(capsys, fake: FakeMgmtd, *argv: str) -> str:
    status = admin(fake, *argv)
    captured = capsys.readouterr()
    assert (status, captured.err) == (0, ""), captured.err
    return captured.out


def run_failing(capsys, argv: list[str]) -> tuple[int, str]:
    status = main(argv)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    return status, captured.err


def test_list_nodes_prints_an_aligned_table(capsys, fake):
    lines = run_ok(capsys, fake, "list-nodes").splitlines()
    assert lines[0].split() == [
        "NODE_ID",
        "TYPE",
        "STATUS",
        "HOSTNAME",
        "ADDRESSES",
        "VERSION",
        "LAST_HEARTBEAT",
    ]
    assert [line.split()[0] for line in lines[1:]] == ["1", "10", "11", "12", "13"]
    column = lines[0].index("STATUS")
    assert [line[column:].split()[0] for line in lines[1:]] == ["ACTIVE"] * 4 + ["FAILED"]
    assert "STORAGE" in lines[2] and "10.0.0.10:8000" in lines[2] and "ago" in lines[2]


def test_list_chains_targets_and_tables(capsys, fake):
    chains = run_ok(capsys, fake, "list-chains").splitlines()
    assert chains[1].split() == ["1", "3", "101:SERVING", "201:SERVING", "301:SERVING", "-"]
    assert chains[2].split()[-1] == "202,302"
    assert "103:LASTSRV 203:OFFLINE" in chains[3]
    targets = run_ok(capsys, fake, "list-targets").splitlines()
    assert targets[1].split()[:5] == ["101", "10", "1", "SERVING", "UPTODATE"]
    assert "1.5 GiB" in targets[1] and "1.0 TiB" in targets[1]
    assert targets[-1].split()[:5] == ["401", "13", "4", "OFFLINE", "OFFLINE"]
    tables = run_ok(capsys, fake, "list-chain-tables").splitlines()
    assert [line.split()[:4] for line in tables[1:]] == [["1", "1", "2", "1,2"], ["1", "2", "3", "1,2,3"]]
    assert tables[2].endswith("grown")


def test_json_output_names_fields_and_states(capsys, fake):
    chains = json.loads(run_ok(capsys, fake, "list-chains", "--json"))["chains"]
    assert chains[0] == {
        "chain_id": 1,
        "chain_version": 3,
        "targets": [{"target_id": t, "public_state": "SERVING"} for t in (101, 201, 301)],
        "preferred_order": [],
        "created_ms": 0,
    }
    nodes = json.loads(run_ok(capsys, fake, "--json", "list-nodes"))["nodes"]  # option before the command
    assert nodes[1]["node_type"] == "STORAGE" and nodes[4]["status"] == "FAILED"
    targets = json.loads(run_ok(capsys, fake, "list-targets", "--json"))["targets"]
    assert targets[0]["public_state"] == "SERVING" and targets[0]["local_state"] == "UPTODATE"
    tables = json.loads(run_ok(capsys, fake, "list-chain-tables", "--json"))["tables"]
    assert tables[1] == {"table_id": 1, "version": 2, "chain_ids": [1, 2, 3], "description": "grown"}
    fake.sessions = [
        wire.ClientSession(
            node_id=70,
            hostname="c",
            addresses=[],
            version="v",
            last_heartbeat_ms=0,
            status=wire.NodeStatus.ACTIVE,
        )
    ]
    sessions = json.loads(run_ok(capsys, fake, "list-client-sessions", "--json"))["sessions"]
    assert sessions[0]["node_id"] == 70 and sessions[0]["status"] == "ACTIVE"
    assert "never" in run_ok(capsys, fake, "list-client-sessions")


def test_cluster_config_file(capsys, fake, tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "not-the-secret")  # the config's secret file wins
    (tmp_path / "secret").write_text(SECRET + "\n")
    config = tmp_path / "cluster.toml"
    config.write_text(
        f'mgmtd_addresses = ["{unused_address()}", "{fake.address}"]\ncluster_secret_file = "secret"\n'
    )
    status = main(["admin", "--cluster-config", str(config), "list-chains", "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert len(json.loads(captured.out)["chains"]) == 4


def test_changes_send_the_right_requests(capsys, fake, tmp_path):
    targets_file = tmp_path / "targets.toml"
    targets_file.write_text("[[targets]]\ntarget_id = 601\nnode_id = 12\ncapacity_bytes = 1024\n")
    assert "created 1 target(s) 601; routing version 6" in run_ok(
        capsys, fake, "create-targets", "--file", str(targets_file)
    )
    run_ok(capsys, fake, "create-targets", "--node-id", "10", "--target-id", "501-502", "--target-id", "505")
    chains_file = tmp_path / "chains.json"
    chains_file.write_text(json.dumps({"chains": [{"chain_id": 8, "target_ids": [601]}]}))
    run_ok(capsys, fake, "create-chains", "--file", str(chains_file))
    run_ok(capsys, fake, "create-chains", "--chain", "9:501,502", "--chain", "10:505")
    out = run_ok(capsys, fake, "create-chain-table", "1", "1-3", "9,10", "--description", "more")
    assert out.strip() == "created chain table 1 version 3 (5 chains)"
    assert "now DISABLED" in run_ok(capsys, fake, "set-node-enabled", "11", "--disable")
    assert "now OFFLINE" in run_ok(capsys, fake, "offline-target", "101")
    run_ok(capsys, fake, "remove-target", "401")
    assert "202:SERVING" in run_ok(capsys, fake, "update-chain", "2", "add", "102")
    run_ok(capsys, fake, "rotate-lastsrv", "3")
    chain = json.loads(run_ok(capsys, fake, "set-preferred-order", "1", "201", "101,301", "--json"))["chain"]
    assert chain["preferred_order"] == [201, 101, 301]
    assert fake.requests == [
        wire.CreateTargetsRequest(targets=[wire.TargetInfo(target_id=601, node_id=12, capacity_bytes=1024)]),
        wire.CreateTargetsRequest(
            targets=[wire.TargetInfo(target_id=t, node_id=10) for t in (501, 502, 505)]
        ),
        wire.CreateChainsRequest(chains=[wire.ChainSpec(chain_id=8, target_ids=[601])]),
        wire.CreateChainsRequest(
            chains=[
                wire.ChainSpec(chain_id=9, target_ids=[501, 502]),
                wire.ChainSpec(chain_id=10, target_ids=[505]),
            ]
        ),
        wire.CreateChainTableRequest(table_id=1, chain_ids=[1, 2, 3, 9, 10], description="more"),
        wire.SetNodeEnabledRequest(node_id=11, enabled=False),
        wire.OfflineTargetRequest(target_id=101),
        wire.RemoveTargetRequest(target_id=401),
        wire.UpdateChainRequest(chain_id=2, target_id=102, add=True),
        wire.RotateLastServingRequest(chain_id=3),
        wire.SetPreferredOrderRequest(chain_id=1, target_ids=[201, 101, 301]),
    ]


def test_unreachable_cluster_exits_3(capsys, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    dead = unused_address()
    status, err = run_failing(capsys, ["admin", "--mgmtd", dead, "--timeout", "0.3", "list-nodes"])
    assert status == 3
    assert err.startswith("error: CLIENT_ROUTING_UNAVAILABLE: ") and dead in err


def test_an_operation_error_exits_1(capsys, fake):
    status, err = run_failing(capsys, ["admin", "--mgmtd", fake.address, "rotate-lastsrv", "77"])
    assert (status, err) == (1, "error: MGMTD_CHAIN_NOT_FOUND: no chain 77\n")
    fake.failures["ListNodes"] = [ThreeFSError(Code.INVALID_ARG, "nope")]
    status, err = run_failing(capsys, ["admin", "--mgmtd", fake.address, "list-nodes"])
    assert (status, err) == (1, "error: INVALID_ARG: nope\n")


def test_a_wrong_secret_exits_1(capsys, fake, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "not-the-secret")
    status, err = run_failing(capsys, ["admin", "--mgmtd", fake.address, "list-nodes"])
    assert status == 1 and err.startswith("error: RPC_AUTH_FAILED: ")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["admin"], "required: COMMAND"),
        (["admin", "--mgmtd", "127.0.0.1:1", "no-such-command"], "invalid choice"),
        (["admin", "--mgmtd", "127.0.0.1:1", "create-chain-table", "1", "3-1"], "bad id list"),
        (["admin", "--mgmtd", "127.0.0.1:1", "create-chains", "--chain", "x:1"], "bad chain"),
        (["admin", "--mgmtd", "127.0.0.1:1", "create-chains"], "give --file FILE or --chain"),
        (["admin", "--mgmtd", "127.0.0.1:1", "create-targets", "--file", "/nonexistent.toml"], "cannot read"),
        (["admin", "--mgmtd", "no-port", "list-nodes"], "bad address"),
        (["admin", "list-nodes"], "no mgmtd address"),
        (["admin", "--mgmtd", "127.0.0.1:1", "--timeout", "0", "list-nodes"], "--timeout must be > 0"),
    ],
)
def test_usage_errors_exit_2(capsys, monkeypatch, argv, expected):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    status, err = run_failing(capsys, argv)
    assert status == 2
    assert expected in err


def test_configuration_errors_exit_2(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    status, err = run_failing(capsys, ["admin", "--mgmtd", "127.0.0.1:1", "list-nodes"])
    assert status == 2 and "no cluster secret" in err
    config = tmp_path / "cluster.toml"
    config.write_text('mgmtd_addresses = ["127.0.0.1:1"]\nsecret = "x"\n')
    status, err = run_failing(capsys, ["admin", "--cluster-config", str(config), "list-nodes"])
    assert status == 2 and err.startswith("error: CONFIG_INVALID: ") and "unknown key 'secret'" in err
    targets = tmp_path / "targets.toml"
    targets.write_text("[[targets]]\ntarget_id = 0\nnode_id = 1\n")
    monkeypatch.setenv(SECRET_ENV, SECRET)
    status, err = run_failing(
        capsys, ["admin", "--mgmtd", "127.0.0.1:1", "create-targets", "--file", str(targets)]
    )
    assert status == 2 and "targets[0].target_id" in err


def test_help_and_version_exit_0(capsys):
    assert main(["--version"]) == 0
    assert "threefs" in capsys.readouterr().out
    assert main(["admin", "list-nodes", "--help"]) == 0
    assert "--mgmtd HOST:PORT" in capsys.readouterr().out


def test_output_helpers():
    assert render_table(["A", "LONG"], [[1, "x"], ["wide", "y"]]) == "A     LONG\n1     x\nwide  y"
    assert [format_bytes(n) for n in (0, 1023, 1536, 3 << 30)] == ["0", "1023", "1.5 KiB", "3.0 GiB"]
    assert format_age(0) == "never"
    assert format_age(10_000, now_s=12.5) == "2.5s ago"
    assert format_age(1, now_s=3 * 3600) == "3h ago"


def test_a_closed_pipe_on_stdout_is_not_an_error(tmp_path):
    """`threefs admin list-chains | head -1`: the reader leaves early; exit 0, no traceback."""
    script = (
        "import sys, client.cli as cli\n"
        "build = cli.build_parser\n"
        "def patched():\n"
        "    parser = build()\n"
        "    parse = parser.parse_args\n"
        "    def parse_args(argv=None):\n"
        "        args = parse(argv)\n"
        "        def run(_):\n"
        "            for _ in range(100000):\n"
        "                print('chain ' * 20)\n"
        "            return 0\n"
        "        args.run = run\n"
        "        return args\n"
        "    parser.parse_args = parse_args\n"
        "    return parser\n"
        "cli.build_parser = patched\n"
        "sys.exit(cli.main(['admin', '--mgmtd', '127.0.0.1:1', 'list-chains']))\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    writer.stdout.readline()
    writer.stdout.close()  # the reader goes away
    stderr = writer.stderr.read().decode()
    assert writer.wait(timeout=30) == 0, stderr
    assert "Traceback" not in stderr
