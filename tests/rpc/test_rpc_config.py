"""RPC configuration sections load from TOML with typed defaults and refuse bad values."""

from __future__ import annotations

import pytest

from threefs.config import load_config
from threefs.errors import Code, ThreeFSError
from threefs.rpc import RpcClientConfig, RpcServerConfig


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "rpc.toml"
    path.write_text("max_in_flight_per_connection = 8\nauth_timeout_s = 2\n")
    config = load_config(RpcServerConfig, path)
    assert config.max_in_flight_per_connection == 8 and config.auth_timeout_s == 2
    assert config.max_frame_bytes == RpcServerConfig().max_frame_bytes
    assert RpcClientConfig().default_timeout_s > 0


@pytest.mark.parametrize(
    "text, key",
    [
        ("max_frame_bytes = 0\n", "max_frame_bytes"),
        ("buffer_cache_bytes = -1\n", "buffer_cache_bytes"),
        ("no_such_key = 1\n", "no_such_key"),
    ],
)
def test_bad_values_are_refused(tmp_path, text, key):
    path = tmp_path / "rpc.toml"
    path.write_text(text)
    with pytest.raises(ThreeFSError) as info:
        load_config(RpcServerConfig, path)
    assert info.value.code == Code.CONFIG_INVALID and key in info.value.message
