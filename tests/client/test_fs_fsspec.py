"""``threefs://`` through fsspec (the entry point), pandas and pyarrow against a real cluster
found through ``$THREEFS_CLUSTER_CONFIG``."""

from __future__ import annotations

import os

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from fs_cluster import CHUNK, cluster_in_thread

import threefs
from client.fsspec_fs import ThreeFSFileSystem

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tfs(tmp_path_factory):
    """The fsspec file system from the default cluster config; /data belongs to this process's
    user, so the default (non-admin) identity may write there."""
    with cluster_in_thread(tmp_path_factory.mktemp("fs-fsspec")) as (_, config):
        old = os.environ.get("THREEFS_CLUSTER_CONFIG")
        os.environ["THREEFS_CLUSTER_CONFIG"] = str(config)
        try:
            with threefs.connect(admin=True) as admin:
                admin.mkdir("/data")
                admin.chown("/data", os.geteuid(), os.getegid())
            fs = fsspec.filesystem("threefs")
            yield fs
            fs.fs.close()
        finally:
            ThreeFSFileSystem.clear_instance_cache()
            if old is None:
                del os.environ["THREEFS_CLUSTER_CONFIG"]
            else:
                os.environ["THREEFS_CLUSTER_CONFIG"] = old


def test_the_entry_point_finds_the_implementation(tfs):
    assert isinstance(tfs, ThreeFSFileSystem)
    assert fsspec.get_filesystem_class("threefs") is ThreeFSFileSystem
    fs, path = fsspec.core.url_to_fs("threefs:///data/x")
    assert fs is tfs and path == "/data/x"


def test_files_listing_and_changes(tfs):
    data = os.urandom(3 * CHUNK + 5)
    tfs.mkdir("/data/basic")
    tfs.pipe_file("threefs:///data/basic/f", data)
    assert tfs.cat_file("/data/basic/f") == data
    assert tfs.cat_file("/data/basic/f", start=-10) == data[-10:]
    assert tfs.cat_file("/data/basic/f", start=5, end=CHUNK + 5) == data[5 : CHUNK + 5]
    with tfs.open("threefs:///data/basic/g", "wb") as f:
        f.write(b"hello")
    with tfs.open("/data/basic/g", "rb") as f:
        assert f.read() == b"hello"
    info = tfs.info("/data/basic/f")
    assert (info["name"], info["size"], info["type"]) == ("/data/basic/f", len(data), "file")
    assert tfs.info("/data/basic")["type"] == "directory"
    assert tfs.ls("/data/basic", detail=False) == ["/data/basic/f", "/data/basic/g"]
    assert [e["size"] for e in tfs.ls("/data/basic")] == [len(data), 5]
    assert tfs.find("/data") == ["/data/basic/f", "/data/basic/g"]
    assert tfs.du("/data/basic") == len(data) + 5
    assert tfs.cat_ranges(
        ["/data/basic/f", "/data/basic/g", "/data/basic/f"], [0, 1, -3], [4, None, None]
    ) == [
        data[:4],
        b"ello",
        data[-3:],
    ]
    results = tfs.cat_ranges(["/data/basic/g", "/data/basic/none"], [0, 0], [2, 2])
    assert results[0] == b"he" and isinstance(results[1], FileNotFoundError)
    tfs.mv("/data/basic/g", "/data/basic/h")
    tfs.cp_file("/data/basic/h", "/data/basic/copy")
    assert tfs.cat("/data/basic/copy") == b"hello"
    tfs.touch("/data/basic/empty")
    assert tfs.size("/data/basic/empty") == 0
    tfs.rm("/data/basic/h")
    assert not tfs.exists("/data/basic/h")
    with pytest.raises(FileNotFoundError):
        tfs.info("/data/basic/h")
    tfs.makedirs("/data/basic/deep/er", exist_ok=True)
    tfs.rm("/data/basic", recursive=True)
    assert not tfs.exists("/data/basic")


def test_pandas_parquet_round_trip(tfs):
    frame = pd.DataFrame({"id": range(20_000), "name": [f"row {i}" for i in range(20_000)]})
    frame.to_parquet("threefs:///data/frame.parquet")
    assert tfs.size("/data/frame.parquet") > CHUNK  # several chunks
    back = pd.read_parquet("threefs:///data/frame.parquet")
    pd.testing.assert_frame_equal(back, frame)
    frame.to_csv("threefs:///data/frame.csv", index=False)
    pd.testing.assert_frame_equal(pd.read_csv("threefs:///data/frame.csv"), frame)


def test_pyarrow_dataset(tfs):
    table = pa.table({"part": [i % 3 for i in range(3000)], "value": list(range(3000))})
    pq.write_to_dataset(table, "/data/dataset", partition_cols=["part"], filesystem=tfs)
    dataset = ds.dataset("/data/dataset", filesystem=tfs, format="parquet", partitioning="hive")
    back = dataset.to_table().sort_by("value")
    assert back.column("value").to_pylist() == list(range(3000))
    assert back.column("part").to_pylist() == [i % 3 for i in range(3000)]
    assert dataset.to_table(filter=ds.field("part") == 1).num_rows == 1000


def test_pickle_through_fsspec_files(tfs):
    """What ``torch.save/load`` do with a file object: pickle write, then seeks and reads."""
    import pickle

    state = {"weights": os.urandom(2 * CHUNK), "step": 7}
    with fsspec.open("threefs:///data/ckpt.pt", "wb") as f:
        pickle.dump(state, f)
    with fsspec.open("threefs:///data/ckpt.pt", "rb") as f:
        assert pickle.load(f) == state


def test_torch_save_and_load(tfs):
    torch = pytest.importorskip("torch")
    with fsspec.open("threefs:///data/t.pt", "wb") as f:
        torch.save({"x": torch.arange(10)}, f)
    with fsspec.open("threefs:///data/t.pt", "rb") as f:
        assert torch.load(f)["x"].tolist() == list(range(10))
