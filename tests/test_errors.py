"""The error registry: complete, in range, stable, and the docs page is generated from it."""

import errno
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from threefs.errors import (
    RANGES,
    REGISTRY,
    RETIRED_CODES,
    Code,
    ThreeFSError,
    is_retryable,
    render_markdown,
    subsystem_of,
)

ROOT = Path(__file__).resolve().parents[1]


def test_every_code_is_registered_once_and_in_a_range():
    assert set(REGISTRY) == set(Code)
    for code in Code:
        assert subsystem_of(code) in RANGES
        assert REGISTRY[code].summary.endswith(".")


def test_values_are_unique_and_never_retired():
    values = [int(c) for c in Code]
    assert len(values) == len(set(values))
    assert not set(values) & set(RETIRED_CODES)


@pytest.mark.parametrize(
    ("prefix", "subsystem"),
    [
        ("KV_", "kv"),
        ("RPC_", "rpc"),
        ("META_", "meta"),
        ("STORAGE_", "storage"),
        ("MGMTD_", "mgmtd"),
        ("CLIENT_", "client"),
    ],
)
def test_names_match_their_range(prefix, subsystem):
    members = [c for c in Code if c.name.startswith(prefix)]
    assert members
    assert all(subsystem_of(c) == subsystem for c in members)


def test_error_carries_code_message_retry_and_errno():
    exc = ThreeFSError(Code.KV_CONFLICT, "key k")
    assert exc.code is Code.KV_CONFLICT
    assert exc.message == "key k"
    assert exc.retryable and is_retryable(exc)
    assert exc.errno == errno.EAGAIN
    assert "KV_CONFLICT(1000)" in str(exc)
    not_found = ThreeFSError(Code.META_NOT_FOUND)
    assert not not_found.retryable
    assert not_found.errno == errno.ENOENT
    assert not_found.message == REGISTRY[Code.META_NOT_FOUND].summary
    assert not is_retryable(ValueError("x"))


def test_integer_codes_resolve_and_unknown_codes_become_internal():
    assert ThreeFSError(3004, "d").code is Code.META_NOT_EMPTY
    unknown = ThreeFSError(999_999, "from a newer peer")
    assert unknown.code is Code.INTERNAL
    assert "999999" in unknown.message


def test_error_survives_pickling():
    exc = pickle.loads(pickle.dumps(ThreeFSError(Code.STORAGE_NO_SPACE, "target 7")))
    assert exc.code is Code.STORAGE_NO_SPACE and exc.message == "target 7"


def test_docs_page_is_current():
    assert (ROOT / "docs" / "errors.md").read_text() == render_markdown()


def test_check_command_fails_on_a_stale_page(tmp_path):
    stale = tmp_path / "errors.md"
    stale.write_text("old")
    cmd = [sys.executable, "-m", "threefs.errors_doc", "--check", str(stale)]
    assert subprocess.run(cmd, capture_output=True).returncode == 1
    subprocess.run([sys.executable, "-m", "threefs.errors_doc", "--write", str(stale)], check=True)
    assert subprocess.run(cmd, capture_output=True).returncode == 0
