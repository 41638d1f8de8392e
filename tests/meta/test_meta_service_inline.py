"""Which meta methods the RPC server runs in place: the read-only ones, on engines with
``local_reads`` only (a remote engine's reads would block the event loop)."""

from __future__ import annotations

import pytest

from meta.app import MetaApp
from meta.config import MetaConfig
from threefs.kv import open_engine
from threefs.kv.mem import MemEngine
from threefs.wire import meta as wire

_READS = {wire.STAT, wire.LOOKUP, wire.BATCH_STAT, wire.READLINK, wire.LIST, wire.GET_REAL_PATH}


class RemoteLikeEngine(MemEngine):
    local_reads = False


def inline_methods(app: MetaApp) -> set:
    return {method.spec for method in app.server._methods.values() if method.inline is not None}


@pytest.mark.parametrize("url", ["mem://", "sqlite"])
def test_reads_run_inline_on_local_engines_and_writes_never(url, tmp_path):
    engine = open_engine(f"sqlite://{tmp_path}/meta.db" if url == "sqlite" else url)
    app = MetaApp(MetaConfig(node_id=1, mgmtd_addresses=["127.0.0.1:1"]), "secret", engine)
    inline = inline_methods(app)
    assert _READS <= inline
    assert not inline & {wire.MKNOD, wire.OPEN, wire.REMOVE, wire.RENAME, wire.SET_ATTR, wire.STAT_FS}
    engine.close()


def test_nothing_runs_inline_on_an_engine_without_local_reads():
    app = MetaApp(MetaConfig(node_id=1, mgmtd_addresses=["127.0.0.1:1"]), "secret", RemoteLikeEngine())
    assert inline_methods(app) == set()
