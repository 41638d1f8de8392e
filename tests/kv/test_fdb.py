"""FoundationDB specifics that run without a cluster: error mapping and a missing client."""

from __future__ import annotations

import ctypes.util
import os

import pytest

from threefs.errors import Code, ThreeFSError
from threefs.kv import open_engine
from threefs.kv.fdb import map_fdb_error


@pytest.mark.parametrize(
    ("fdb_code", "retryable", "expected"),
    [
        (1020, True, Code.KV_CONFLICT),
        (1007, True, Code.KV_TXN_TOO_OLD),
        (1021, True, Code.KV_COMMIT_UNKNOWN),
        (2101, False, Code.KV_TXN_TOO_LARGE),
        (2102, False, Code.KV_KEY_TOO_LARGE),
        (2103, False, Code.KV_VALUE_TOO_LARGE),
        (1037, True, Code.KV_UNAVAILABLE),  # process_behind: retryable, no dedicated code
        (4100, False, Code.INTERNAL),  # internal_error
    ],
)
def test_error_mapping(fdb_code: int, retryable: bool, expected: Code) -> None:
    error = map_fdb_error(fdb_code, "description", retryable, "commit")
    assert error.code == expected
    assert str(fdb_code) in error.message and "description" in error.message
    assert error.retryable == (expected in {Code.KV_CONFLICT, Code.KV_TXN_TOO_OLD, Code.KV_COMMIT_UNKNOWN,
                                            Code.KV_UNAVAILABLE})  # fmt: skip


def test_missing_client_library_is_unavailable() -> None:
    if ctypes.util.find_library("fdb_c") or os.environ.get("THREEFS_FDB_CLUSTER_FILE"):
        pytest.skip("the FoundationDB client library is installed here")
    with pytest.raises(ThreeFSError) as excinfo:
        open_engine("fdb://")
    assert excinfo.value.code == Code.KV_UNAVAILABLE


def test_url_with_host_is_refused() -> None:
    with pytest.raises(ThreeFSError) as excinfo:
        open_engine("fdb://host/etc/fdb.cluster")
    assert excinfo.value.code == Code.INVALID_ARG
