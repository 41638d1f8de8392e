"""The cluster secret: file beats environment, relative paths sit beside the config file."""

import pytest

from mgmtd.config import load_cluster_secret, load_mgmtd_config
from threefs.errors import Code, ThreeFSError
from threefs.secret import SECRET_ENV, cluster_secret, resolve_beside


def test_file_wins_over_environment(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("  from-file\n")
    assert cluster_secret(str(secret_file), {SECRET_ENV: "from-env"}) == b"from-file"
    assert cluster_secret("", {SECRET_ENV: " from-env "}) == b"from-env"


@pytest.mark.parametrize("content", [None, "", "  \n"])
def test_missing_or_empty_secret_is_a_config_error(tmp_path, content):
    secret_file = tmp_path / "secret"
    if content is not None:
        secret_file.write_text(content)
    with pytest.raises(ThreeFSError) as info:
        cluster_secret(str(secret_file), {SECRET_ENV: "ignored"})
    assert info.value.code is Code.CONFIG_INVALID and str(secret_file) in info.value.message
    with pytest.raises(ThreeFSError, match=SECRET_ENV):
        cluster_secret("", {})


def test_relative_paths_resolve_beside_the_config_file(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    assert resolve_beside("secret", tmp_path / "cluster.toml") == str(tmp_path / "secret")
    assert resolve_beside("/etc/x", tmp_path / "cluster.toml") == "/etc/x"
    assert resolve_beside("", tmp_path / "cluster.toml") == ""


def test_mgmtd_reads_a_relative_secret_file_beside_its_config(tmp_path, monkeypatch):
    (tmp_path / "secret").write_text("s3cret")
    config_file = tmp_path / "mgmtd.toml"
    config_file.write_text('cluster_secret_file = "secret"\n')
    monkeypatch.chdir("/")
    config = load_mgmtd_config(config_file)
    assert load_cluster_secret(config, {}) == b"s3cret"
