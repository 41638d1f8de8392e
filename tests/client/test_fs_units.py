"""The file system API's pure parts: open modes, stat results, error mapping, cluster config
resolution, fsspec paths and the background loop thread (no cluster)."""

from __future__ import annotations

import errno
import os
import stat

import pytest
import trio

from client.connect import resolve_cluster
from client.fs import parse_mode, stat_result
from client.fs.errors import os_error
from client.fs.loop import LoopThread
from client.fsspec_fs import ThreeFSFileSystem
from threefs.errors import Code, ThreeFSError
from threefs.wire.meta import Inode, InodeType, OpenFlags


@pytest.mark.parametrize(
    ("mode", "flags", "readable", "writable", "append"),
    [
        ("rb", OpenFlags.READ, True, False, False),
        ("r", OpenFlags.READ, True, False, False),
        ("wb", OpenFlags.WRITE | OpenFlags.CREATE | OpenFlags.TRUNCATE, False, True, False),
        ("ab", OpenFlags.WRITE | OpenFlags.CREATE | OpenFlags.APPEND, False, True, True),
        ("xb", OpenFlags.WRITE | OpenFlags.CREATE | OpenFlags.EXCLUSIVE, False, True, False),
        ("r+b", OpenFlags.READ | OpenFlags.WRITE, True, True, False),
        ("rb+", OpenFlags.READ | OpenFlags.WRITE, True, True, False),
        ("w+b", OpenFlags.READ | OpenFlags.WRITE | OpenFlags.CREATE | OpenFlags.TRUNCATE, True, True, False),
        ("a+b", OpenFlags.READ | OpenFlags.WRITE | OpenFlags.CREATE | OpenFlags.APPEND, True, True, True),
    ],
)
def test_modes_map_to_meta_flags(mode, flags, readable, writable, append):
    parsed = parse_mode(mode)
    assert (parsed.flags, parsed.readable, parsed.writable, parsed.append) == (
        flags,
        readable,
        writable,
        append,
    )


@pytest.mark.parametrize("mode", ["rt", "", "rw", "rbb", "q", "w+t", "ra"])
def test_bad_modes_are_refused(mode):
    with pytest.raises(ValueError, match="mode"):
        parse_mode(mode)


def _inode(**fields) -> Inode:
    base = dict(
        id=7, type=InodeType.FILE, mode=0o640, uid=5, gid=6, nlink=2,
        atime_ns=1_500_000_000, mtime_ns=2_000_000_001, ctime_ns=3_000_000_000, length=1000,
    )  # fmt: skip
    return Inode(**(base | fields))


def test_stat_result_has_type_bits_times_and_sizes():
    result = stat_result(_inode())
    assert stat.S_ISREG(result.st_mode) and stat.S_IMODE(result.st_mode) == 0o640
    assert (result.st_ino, result.st_nlink, result.st_uid, result.st_gid, result.st_size) == (
        7,
        2,
        5,
        6,
        1000,
    )
    assert result.st_mtime_ns == 2_000_000_001 and result.st_mtime == pytest.approx(2.000000001)
    assert result.st_atime == pytest.approx(1.5) and result.st_blocks == 2
    assert stat.S_ISDIR(stat_result(_inode(type=InodeType.DIRECTORY)).st_mode)
    assert stat.S_ISLNK(stat_result(_inode(type=InodeType.SYMLINK)).st_mode)
    assert stat.S_ISFIFO(stat_result(_inode(type=InodeType.FIFO)).st_mode)


@pytest.mark.parametrize(
    ("code", "kind", "number"),
    [
        (Code.META_NOT_FOUND, FileNotFoundError, errno.ENOENT),
        (Code.META_EXISTS, FileExistsError, errno.EEXIST),
        (Code.META_PERMISSION_DENIED, PermissionError, errno.EACCES),
        (Code.META_IS_DIRECTORY, IsADirectoryError, errno.EISDIR),
        (Code.META_NOT_DIRECTORY, NotADirectoryError, errno.ENOTDIR),
        (Code.META_NOT_EMPTY, OSError, errno.ENOTEMPTY),
        (Code.CLIENT_ROUTING_UNAVAILABLE, OSError, ThreeFSError(Code.CLIENT_ROUTING_UNAVAILABLE).errno),
    ],
)
def test_errors_become_os_errors_with_the_registry_errno(code, kind, number):
    error = os_error(ThreeFSError(code, "detail"), "/a", "/b")
    assert type(error) is kind and error.errno == number
    assert error.filename == "/a" and error.filename2 == "/b" and error.code == code
    assert code.name in str(error)


def test_cluster_config_resolution(tmp_path, monkeypatch):
    (tmp_path / "secret").write_text("s3cret\n")
    config_file = tmp_path / "cluster.toml"
    config_file.write_text('mgmtd_addresses = ["127.0.0.1:9000"]\ncluster_secret_file = "secret"\n')
    config, secret = resolve_cluster(config_file)
    assert config.mgmtd_addresses == ["127.0.0.1:9000"] and secret == b"s3cret"

    monkeypatch.setenv("THREEFS_CLUSTER_CONFIG", str(config_file))
    assert resolve_cluster()[1] == b"s3cret"
    monkeypatch.delenv("THREEFS_CLUSTER_CONFIG")
    monkeypatch.setenv("THREEFS_DATA_DIR", str(tmp_path))
    assert resolve_cluster()[0].mgmtd_addresses == ["127.0.0.1:9000"]

    config, secret = resolve_cluster(mgmtd="127.0.0.1:9001", secret="x")
    assert config.mgmtd_addresses == ["127.0.0.1:9001"] and secret == b"x"
    monkeypatch.setenv("THREEFS_CLUSTER_SECRET", "from-env")
    assert resolve_cluster(mgmtd=["127.0.0.1:9001"])[1] == b"from-env"
    monkeypatch.delenv("THREEFS_CLUSTER_SECRET")
    with pytest.raises(ThreeFSError) as info:
        resolve_cluster(mgmtd=["127.0.0.1:9001"])
    assert info.value.code == Code.CONFIG_INVALID and "secret" in info.value.message

    monkeypatch.setenv("THREEFS_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ThreeFSError, match="threefs up"):
        resolve_cluster()
    with pytest.raises(ThreeFSError) as info:
        resolve_cluster(tmp_path / "missing.toml")
    assert info.value.code == Code.CONFIG_INVALID


def test_threefs_connect_reports_a_missing_cluster(tmp_path, monkeypatch):
    import threefs

    monkeypatch.delenv("THREEFS_CLUSTER_CONFIG", raising=False)
    monkeypatch.setenv("THREEFS_DATA_DIR", str(tmp_path))
    with pytest.raises(ThreeFSError) as info:
        threefs.connect()
    assert info.value.code == Code.CONFIG_INVALID


@pytest.mark.parametrize(
    ("url", "path"),
    [("threefs:///a/b", "/a/b"), ("threefs://a/b/", "/a/b"), ("/a", "/a"), ("threefs://", "/"), ("x", "/x")],
)
def test_fsspec_paths(url, path):
    assert ThreeFSFileSystem._strip_protocol(url) == path


class _Resource:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.entered = self.exited = False

    async def __aenter__(self):
        if self.fail:
            raise OSError(errno.EIO, "cannot enter")
        self.entered = True
        return self

    async def __aexit__(self, *exc_info):
        self.exited = True

    async def echo(self, value):
        await trio.lowlevel.checkpoint()
        return value, trio.lowlevel.current_trio_token() is not None


def test_loop_thread_runs_calls_from_many_threads_and_closes():
    import concurrent.futures

    resource = _Resource()
    loop = LoopThread(lambda: resource)
    assert loop.start() is resource and resource.entered
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(lambda n: loop.run(resource.echo, n)[0], range(50))) == list(range(50))
    loop.close()
    loop.close()
    assert resource.exited and loop.closed
    with pytest.raises(ValueError, match="closed"):
        loop.run(resource.echo, 1)


def test_loop_thread_start_raises_what_entering_raised():
    loop = LoopThread(lambda: _Resource(fail=True))
    with pytest.raises(OSError, match="cannot enter"):
        loop.start()
    assert loop.closed


def test_relative_paths_start_at_the_root():
    from client.fs import normalize

    assert normalize("a/b") == "/a/b" and normalize(b"/x") == "/x" and normalize(os.fspath("/")) == "/"
