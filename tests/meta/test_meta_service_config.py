"""``threefs-meta`` configuration: defaults, range checks, ``--dump-config`` and the exit status
of a bad file (no process is left running: it stops before listening)."""

from __future__ import annotations

import tomllib

import pytest

from meta.config import MetaConfig, load_meta_config
from meta.main import main
from threefs.errors import Code, ThreeFSError


def write(tmp_path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "meta.toml"
    path.write_text(text)
    return path


def test_a_minimal_config_gets_every_default_and_the_secret_path_resolved(tmp_path):
    path = write(tmp_path, 'node_id = 7\nmgmtd_addresses = ["127.0.0.1:8000"]\ncluster_secret_file = "s"\n')
    config = load_meta_config(path)
    assert config.node_id == 7 and config.default_table_id == 1 and config.gc_delay_s == 60.0
    assert config.cluster_secret_file == str(tmp_path / "s")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("node_id = 7\n", "mgmtd_addresses"),
        ('mgmtd_addresses = ["h:1"]\n', "node_id"),
        ('node_id = 7\nmgmtd_addresses = ["h:1"]\ndefault_chunk_size = 1000\n', "default_chunk_size"),
        ('node_id = 7\nmgmtd_addresses = ["h:1"]\ngc_interval_s = 0\n', "gc_interval_s"),
        ('node_id = 7\nmgmtd_addresses = ["h:1"]\ngc_delay_s = -1\n', "gc_delay_s"),
        ('node_id = 7\nmgmtd_addresses = ["h:1"]\nkv_url = ""\n', "kv_url"),
        ('node_id = 7\nmgmtd_addresses = ["h:1"]\nno_such_key = 1\n', "no_such_key"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(tmp_path, text, key):
    with pytest.raises(ThreeFSError) as caught:
        load_meta_config(write(tmp_path, text))
    assert caught.value.code == Code.CONFIG_INVALID and key in caught.value.message


def test_dump_config_prints_toml_that_loads_back(tmp_path, capsys):
    path = write(tmp_path, 'node_id = 7\nmgmtd_addresses = ["127.0.0.1:8000"]\ngc_delay_s = 0.5\n')
    assert main(["--config", str(path), "--dump-config"]) == 0
    dumped = tomllib.loads(capsys.readouterr().out)
    assert dumped["gc_delay_s"] == 0.5 and dumped["node_id"] == 7
    assert MetaConfig(**{k: v for k, v in dumped.items() if not isinstance(v, dict)}).node_id == 7


def test_a_bad_config_file_exits_2_with_one_line(tmp_path, capsys):
    assert main(["--config", str(write(tmp_path, "node_id = 0\n"))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("threefs-meta:") and len(err.strip().splitlines()) == 1
