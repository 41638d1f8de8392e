"""The storage node's configuration and command line: defaults, checks, paths beside the file,
exit codes of ``threefs-storage``."""

from __future__ import annotations

import json

import pytest
import trio

from storage.app import StorageApp
from storage.components.targets import MARKER_NAME
from storage.config import StorageConfig, TargetConfig, load_cluster_secret, load_storage_config
from storage.main import main
from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import LocalTargetState


def write_config(tmp_path, text: str):
    path = tmp_path / "storage.toml"
    path.write_text(text)
    return path


def test_loading_resolves_paths_beside_the_file(tmp_path):
    path = write_config(
        tmp_path,
        'node_id = 4\nmgmtd_addresses = ["127.0.0.1:8001"]\ncluster_secret_file = "secret"\n'
        'data_dir = "data"\n[[targets]]\ntarget_id = 401\n[[targets]]\ntarget_id = 402\npath = "/srv/t402"\n'
        "[rpc]\nmax_in_flight_per_connection = 64\n",
    )
    config = load_storage_config(path)
    assert config.cluster_secret_file == str(tmp_path / "secret")
    assert config.data_dir == str(tmp_path / "data")
    assert [str(config.target_path(t)) for t in config.targets] == [
        str(tmp_path / "data" / "target-401"),
        "/srv/t402",
    ]
    assert config.fsync is True and config.heartbeat_interval_s == 0.0 and config.metrics_port == -1
    assert config.rpc.max_in_flight_per_connection == 64
    (tmp_path / "secret").write_text("  s3cret\n")
    assert load_cluster_secret(config) == b"s3cret"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('mgmtd_addresses = ["h:1"]\n', "node_id"),
        ("node_id = 1\n", "mgmtd_addresses"),
        ('node_id = 1\nmgmtd_addresses = ["nope"]\n', "mgmtd_addresses"),
        ('node_id = 1\nmgmtd_addresses = ["h:1"]\nmystery = 2\n', "mystery"),
        (
            'node_id = 1\nmgmtd_addresses = ["h:1"]\n'
            "[[targets]]\ntarget_id = 1\n[[targets]]\ntarget_id = 1\n",
            "targets",
        ),
        ('node_id = 1\nmgmtd_addresses = ["h:1"]\nmax_concurrent_reads = 0\n', "max_concurrent_reads"),
        ('node_id = 1\nmgmtd_addresses = ["h:1"]\ninline_read_max_bytes = -1\n', "inline_read_max_bytes"),
        ('node_id = 1\nmgmtd_addresses = ["h:1"]\ninline_read_max_bytes = 2000000\n', "inline_read_max"),
        ('node_id = 1\nmgmtd_addresses = ["h:1"]\ninline_reads_wait_for_disk = 1\n', "inline_reads_wait"),
        ('node_id = 1\nmgmtd_addresses = ["h:1"]\nlog_level = "LOUD"\n', "log_level"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, text, key):
    with pytest.raises(ThreeFSError) as error:
        load_storage_config(write_config(tmp_path, text))
    assert error.value.code == Code.CONFIG_INVALID
    assert key in error.value.message


def test_the_command_exits_2_on_a_bad_config_or_secret(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("THREEFS_CLUSTER_SECRET", raising=False)
    assert main(["--config", str(tmp_path / "missing.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    path = write_config(tmp_path, 'node_id = 1\nmgmtd_addresses = ["127.0.0.1:1"]\n')
    assert main(["--config", str(path)]) == 2
    assert "no cluster secret" in capsys.readouterr().err


def test_a_target_directory_of_another_target_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("THREEFS_CLUSTER_SECRET", "x")
    target = tmp_path / "t1"
    target.mkdir()
    (target / MARKER_NAME).write_text(json.dumps({"target_id": 9, "cluster_id": "threefs"}))
    path = write_config(
        tmp_path,
        f'node_id = 1\nmgmtd_addresses = ["127.0.0.1:1"]\nlisten_port = 0\nfsync = false\n'
        f'[[targets]]\ntarget_id = 1\npath = "{target}"\n',
    )
    assert main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "belongs to target 9" in err and err.count("\n") == 1


def test_config_defaults_are_valid_once_node_and_mgmtd_are_given():
    config = StorageConfig(node_id=1, mgmtd_addresses=["127.0.0.1:8000"], targets=[TargetConfig(target_id=5)])
    assert str(config.target_path(config.targets[0])).endswith("target-5")


async def test_disk_targets_markers_and_a_disk_that_cannot_open(tmp_path):
    (tmp_path / "blocker").write_text("not a directory")
    config = StorageConfig(
        node_id=1,
        mgmtd_addresses=["127.0.0.1:1"],
        listen_port=0,
        data_dir=str(tmp_path / "data"),
        fsync=False,
        targets=[TargetConfig(target_id=1), TargetConfig(target_id=2, path=str(tmp_path / "blocker" / "t2"))],
    )
    async with trio.open_nursery() as nursery:
        app = await nursery.start(StorageApp(config, "secret").run)
        good, bad = app.targets.get(1), app.targets.get(2)
        assert not good.failed and bad.failed
        assert bad.local_state == LocalTargetState.OFFLINE
        marker = json.loads((tmp_path / "data" / "target-1" / MARKER_NAME).read_text())
        assert marker == {"target_id": 1, "cluster_id": "threefs"}
        nursery.cancel_scope.cancel()
