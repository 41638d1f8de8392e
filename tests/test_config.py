"""Typed TOML configs: defaults, and clear errors that name the key and the file."""

import msgspec
import pytest

from threefs.config import Section, config_to_dict, load_config, parse_config
from threefs.errors import Code, ThreeFSError


class Listen(Section):
    host: str = "127.0.0.1"
    port: int = 0


class Ranged(Section):
    workers: int = 1

    def __post_init__(self):
        if self.workers <= 0:
            raise ThreeFSError(Code.CONFIG_INVALID, "key 'workers' must be > 0")


class Example(Section):
    name: str = "node"
    heartbeat_s: float = 1.5
    tags: list[str] = msgspec.field(default_factory=list)
    listen: Listen = msgspec.field(default_factory=Listen)


def write(tmp_path, text):
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_missing_path_gives_defaults():
    config = load_config(Example, None)
    assert config == Example()
    assert config.listen.host == "127.0.0.1"


def test_values_override_defaults(tmp_path):
    config = load_config(Example, write(tmp_path, 'name = "a"\n[listen]\nport = 9000\n'))
    assert config.name == "a"
    assert config.listen.port == 9000
    assert config.heartbeat_s == 1.5
    assert config_to_dict(config)["listen"] == {"host": "127.0.0.1", "port": 9000}


def test_unknown_top_level_key_names_key_and_file(tmp_path):
    path = write(tmp_path, "nmae = 'typo'\n")
    with pytest.raises(ThreeFSError) as info:
        load_config(Example, path)
    assert info.value.code is Code.CONFIG_INVALID
    assert "'nmae'" in info.value.message and str(path) in info.value.message


def test_unknown_nested_key_is_dotted(tmp_path):
    with pytest.raises(ThreeFSError) as info:
        load_config(Example, write(tmp_path, "[listen]\nprot = 1\n"))
    assert "'listen.prot'" in info.value.message


def test_wrong_type_names_key_and_file(tmp_path):
    path = write(tmp_path, '[listen]\nport = "nine"\n')
    with pytest.raises(ThreeFSError) as info:
        load_config(Example, path)
    assert info.value.code is Code.CONFIG_INVALID
    assert "'listen.port'" in info.value.message and str(path) in info.value.message
    assert "int" in info.value.message


def test_strict_types_refuse_int_for_bool_and_str_lists(tmp_path):
    with pytest.raises(ThreeFSError) as info:
        load_config(Example, write(tmp_path, "tags = [1, 2]\n"))
    assert "'tags[0]'" in info.value.message


def test_missing_file_and_bad_toml_are_config_errors(tmp_path):
    with pytest.raises(ThreeFSError) as info:
        load_config(Example, tmp_path / "absent.toml")
    assert info.value.code is Code.CONFIG_INVALID and "not found" in info.value.message
    with pytest.raises(ThreeFSError) as info:
        load_config(Example, write(tmp_path, "name = \n"))
    assert "not valid TOML" in info.value.message


def test_parse_config_reports_source():
    with pytest.raises(ThreeFSError) as info:
        parse_config(Example, {"heartbeat_s": "soon"}, "inline")
    assert info.value.message.startswith("inline: key 'heartbeat_s'")


def test_range_checks_name_the_file(tmp_path):
    path = write(tmp_path, "workers = 0\n")
    with pytest.raises(ThreeFSError) as info:
        load_config(Ranged, path)
    assert info.value.code is Code.CONFIG_INVALID
    assert info.value.message == f"{path}: key 'workers' must be > 0"
    assert load_config(Ranged, write(tmp_path, "workers = 3\n")).workers == 3
