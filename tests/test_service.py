"""Shared service plumbing: config dumps read back the same, logs stay on one line."""

import logging
import sys
import tomllib

from mgmtd.config import MgmtdConfig
from storage.config import StorageConfig
from threefs.config import config_to_dict, parse_config
from threefs.service import LogfmtFormatter, dump_toml


def test_dump_toml_round_trips_nested_tables_and_lists_of_tables():
    data = {
        "name": 'a "quoted" name',
        "ratio": 0.5,
        "on": True,
        "ids": [1, 2],
        "targets": [{"target_id": 101, "path": "/d/1"}, {"target_id": 102, "path": ""}],
        "rpc": {"max_frame_bytes": 10, "inner": {"deep": "x"}},
    }
    assert tomllib.loads(dump_toml(data)) == data


def test_every_service_config_dumps_to_toml_that_loads_back():
    storage = parse_config(
        StorageConfig,
        {"node_id": 3, "targets": [{"target_id": 301, "path": "/srv/t1"}], "mgmtd_addresses": ["h:1"]},
    )
    for config in (MgmtdConfig(), storage):
        dumped = dump_toml(config_to_dict(config))
        assert parse_config(type(config), tomllib.loads(dumped)) == config


def test_logfmt_lines_never_break():
    formatter = LogfmtFormatter()
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = logging.LogRecord(
            "storage.x", logging.ERROR, __file__, 1, "two\nlines %s", ("x",), sys.exc_info()
        )
    line = formatter.format(record)
    assert "\n" not in line
    assert 'level=ERROR logger=storage.x msg="two\\nlines x"' in line
    assert "exc=" in line and "ValueError" in line
