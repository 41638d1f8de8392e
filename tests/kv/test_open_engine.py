"""``open_engine(url)``: schemes, and clear errors for URLs it cannot use."""

from __future__ import annotations

import pytest

from threefs.errors import Code, ThreeFSError
from threefs.kv import MemEngine, open_engine
from threefs.kv.sqlite import SqliteEngine


def test_mem_and_sqlite(tmp_path) -> None:
    with open_engine("mem://") as first, open_engine("mem://") as second:
        assert isinstance(first, MemEngine)
        txn = first.transaction()
        txn.set(b"k", b"v")
        txn.commit()
        with second.transaction() as other:
            assert other.get(b"k") is None  # each mem:// is its own store
    with open_engine(f"sqlite://{tmp_path}/kv.db") as engine:
        assert isinstance(engine, SqliteEngine) and engine.path == tmp_path / "kv.db"


@pytest.mark.parametrize(
    "url", ["redis://localhost", "kv.db", "", "mem://name", "mem://?x=1", "sqlite://", "fdb://host/f"]
)
def test_bad_urls_name_the_url(url: str) -> None:
    with pytest.raises(ThreeFSError) as excinfo:
        open_engine(url)
    assert excinfo.value.code == Code.INVALID_ARG
    assert repr(url) in excinfo.value.message


def test_non_string_url() -> None:
    with pytest.raises(ThreeFSError) as excinfo:
        open_engine(b"mem://")  # type: ignore[arg-type]
    assert excinfo.value.code == Code.INVALID_ARG
