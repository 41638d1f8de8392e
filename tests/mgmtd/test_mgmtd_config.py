"""MgmtdConfig range checks, the cluster secret, and the command line (``mgmtd.main``)."""

from __future__ import annotations

import tomllib

import pytest

from mgmtd.config import SECRET_ENV, MgmtdConfig, load_cluster_secret
from mgmtd.main import main
from threefs.config import config_to_dict, load_config, parse_config
from threefs.errors import Code, ThreeFSError


def test_defaults_are_valid_and_documented_values():
    config = MgmtdConfig()
    assert (config.lease_s, config.heartbeat_interval_s, config.metrics_port) == (10.0, 10.0, -1)
    assert config.kv_url.startswith("sqlite:///")


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"node_id": 0}, "node_id"),
        ({"listen_port": 70000}, "listen_port"),
        ({"cluster_id": ""}, "cluster_id"),
        ({"lease_s": 0}, "lease_s"),
        ({"heartbeat_interval_s": 5.0, "heartbeat_timeout_s": 5.0}, "heartbeat_timeout_s"),
        ({"chain_grace_s": -1.0}, "chain_grace_s"),
        ({"metrics_port": -2}, "metrics_port"),
        ({"log_level": "LOUD"}, "log_level"),
        ({"advertise_address": "nohost"}, "advertise_address"),
    ],
)
def test_out_of_range_values_name_the_key(data, key):
    with pytest.raises(ThreeFSError) as caught:
        parse_config(MgmtdConfig, data, "m.toml")
    assert caught.value.code == Code.CONFIG_INVALID
    assert f"key '{key}'" in caught.value.message and "m.toml" in caught.value.message


def test_unknown_keys_and_nested_rpc_section(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text("node_id = 3\n[rpc]\nauth_timeout_s = 2.0\n")
    config = load_config(MgmtdConfig, path)
    assert (config.node_id, config.rpc.auth_timeout_s) == (3, 2.0)
    path.write_text("lease_ms = 3\n")
    with pytest.raises(ThreeFSError, match="unknown key 'lease_ms'"):
        load_config(MgmtdConfig, path)


def test_the_secret_file_wins_over_the_environment(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("  from-file\n")
    config = MgmtdConfig(cluster_secret_file=str(secret_file))
    assert load_cluster_secret(config, {SECRET_ENV: "from-env"}) == b"from-file"
    assert load_cluster_secret(MgmtdConfig(), {SECRET_ENV: "from-env"}) == b"from-env"
    secret_file.write_text("\n")
    for bad_config, environ, words in [
        (config, {SECRET_ENV: "from-env"}, "is empty"),
        (MgmtdConfig(cluster_secret_file=str(tmp_path / "missing")), {}, "cannot read"),
        (MgmtdConfig(), {}, SECRET_ENV),
    ]:
        with pytest.raises(ThreeFSError) as caught:
            load_cluster_secret(bad_config, environ)
        assert caught.value.code == Code.CONFIG_INVALID and words in caught.value.message


def test_dump_config_prints_toml_that_loads_back(tmp_path, capsys):
    path = tmp_path / "m.toml"
    path.write_text('node_id = 4\ncluster_id = "a \\"quoted\\" id"\n[rpc]\ndrain_timeout_s = 1.5\n')
    assert main(["--config", str(path), "--dump-config"]) == 0
    dumped = tomllib.loads(capsys.readouterr().out)
    assert dumped == config_to_dict(load_config(MgmtdConfig, path))
    assert dumped["node_id"] == 4 and dumped["rpc"]["drain_timeout_s"] == 1.5


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("node_id = -1\n", "key 'node_id'"),
        ("bogus = 1\n", "unknown key 'bogus'"),
        ("node_id = \n", "not valid TOML"),
    ],
)
def test_a_bad_config_exits_2_with_one_line(tmp_path, capsys, text, words):
    path = tmp_path / "m.toml"
    path.write_text(text)
    assert main(["--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert words in captured.err and "Traceback" not in captured.err


def test_no_secret_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    path = tmp_path / "m.toml"
    path.write_text(f'kv_url = "sqlite:///{tmp_path}/kv.db"\nlisten_port = 0\n')
    assert main(["--config", str(path)]) == 2
    assert SECRET_ENV in capsys.readouterr().err


def test_a_store_of_another_cluster_exits_2(tmp_path, capsys, monkeypatch):
    from mgmtd.store import ensure_cluster
    from threefs.kv import open_engine, run_transaction

    engine = open_engine(f"sqlite:///{tmp_path}/kv.db")
    run_transaction(engine, lambda txn: ensure_cluster(txn, "first", 1))
    engine.close()
    monkeypatch.setenv(SECRET_ENV, "s")
    path = tmp_path / "m.toml"
    path.write_text(f'cluster_id = "second"\nkv_url = "sqlite:///{tmp_path}/kv.db"\nlisten_port = 0\n')
    assert main(["--config", str(path)]) == 2
    assert "belongs to cluster 'first'" in capsys.readouterr().err
