"""The synchronous ``FileSystem`` against a real cluster (``LocalCluster``: mgmtd, 2 storage
nodes with 2 replicas, meta; 64 KiB chunks): every file and namespace call, open modes,
buffering, lengths, read_ranges, error mapping, several threads, and two clients."""

from __future__ import annotations

import concurrent.futures
import errno
import hashlib
import io
import itertools
import os
import shutil
import stat

import pytest
from fs_cluster import CHUNK, cluster_in_thread

import threefs
from client.fs import FileSystem, FileSystemConfig
from threefs.wire.meta import Caller

pytestmark = pytest.mark.slow

_names = itertools.count()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with cluster_in_thread(tmp_path_factory.mktemp("fs-sync")) as (local, config):
        yield local, config


@pytest.fixture(scope="module")
def fs(cluster):
    with threefs.connect(cluster[1], admin=True, config=FileSystemConfig(write_buffer_bytes=256 << 10)) as fs:
        yield fs


@pytest.fixture
def d(fs) -> str:
    """A fresh directory per test."""
    path = f"/t{next(_names)}"
    fs.mkdir(path)
    return path


def test_connect_returns_a_file_system_and_close_ends_it(cluster):
    local, config = cluster
    fs = threefs.connect(config, admin=True)
    assert isinstance(fs, FileSystem) and fs.exists("/")
    fs.close()
    fs.close()
    with pytest.raises(ValueError, match="closed"):
        fs.stat("/")
    with threefs.connect(mgmtd=local.mgmtd_address, secret=local.secret, admin=True) as other:
        assert stat.S_ISDIR(other.stat("/").st_mode)


def test_write_then_read_a_large_multi_chunk_file(fs, d):
    data = os.urandom(3 * (1 << 20) + 12345)  # 49 chunks of 64 KiB
    with fs.open(f"{d}/big", "wb") as f:
        for start in range(0, len(data), 100_003):  # odd pieces: buffered, flushed in large writes
            assert f.write(data[start : start + 100_003]) == len(data[start : start + 100_003])
        assert f.tell() == len(data)
    assert fs.stat(f"{d}/big").st_size == len(data)
    with fs.open(f"{d}/big") as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()
        assert f.read() == b"" and f.read(10) == b""
        f.seek(CHUNK - 10)
        assert f.read(20) == data[CHUNK - 10 : CHUNK + 10]
        buffer = bytearray(3 * CHUNK)
        assert f.readinto(buffer) == len(buffer) and buffer == data[CHUNK + 10 : 4 * CHUNK + 10]
        assert f.pread(100, len(data) - 40) == data[-40:]  # short at EOF
        assert f.tell() == 4 * CHUNK + 10  # pread does not move it
    assert fs.read_bytes(f"{d}/big", 5, 70_000) == data[5:70_000]


def test_open_modes(fs, d):
    path = f"{d}/f"
    with pytest.raises(FileNotFoundError):
        fs.open(path, "rb")
    with fs.open(path, "xb") as f:
        f.write(b"hello world")
    with pytest.raises(FileExistsError):
        fs.open(path, "xb")
    with fs.open(path, "ab") as f:
        f.seek(0)
        f.write(b"!")  # appends, wherever the position was
        assert f.tell() == 12
    assert fs.read_bytes(path) == b"hello world!"
    with fs.open(path, "r+b") as f:
        f.seek(6)
        f.write(b"WORLD")
        f.seek(0)
        assert f.read() == b"hello WORLD!"  # reads what this handle just wrote
    with fs.open(path, "a+b") as f:
        assert f.read() == b"hello WORLD!"
        f.write(b"?")
        f.seek(0)
        assert f.read() == b"hello WORLD!?"
    with fs.open(path, "w+b") as f:
        assert f.read() == b""  # truncated
        f.write(b"new")
        f.seek(0)
        assert f.read() == b"new"
    assert fs.stat(path).st_size == 3
    with fs.open(path, "wb") as f:
        pass
    assert fs.stat(path).st_size == 0
    with fs.open(path, "rb") as f, pytest.raises(io.UnsupportedOperation):
        f.write(b"x")
    with fs.open(path, "wb") as f, pytest.raises(io.UnsupportedOperation):
        f.read()
    with pytest.raises(ValueError, match="mode"):
        fs.open(path, "rt")


def test_seek_tell_holes_and_eof(fs, d):
    path = f"{d}/holes"
    with fs.open(path, "w+b") as f:
        f.write(b"abc")
        assert f.seek(2 * CHUNK + 5) == 2 * CHUNK + 5
        f.write(b"xyz")
        assert f.seek(-3, os.SEEK_END) == 2 * CHUNK + 5
        assert f.read() == b"xyz"
        assert f.seek(-4, os.SEEK_CUR) == 2 * CHUNK + 4
        with pytest.raises(OSError) as info:
            f.seek(-1)
        assert info.value.errno == errno.EINVAL
    data = fs.read_bytes(path)
    assert len(data) == 2 * CHUNK + 8 and data[:3] == b"abc" and data[3:-3] == bytes(len(data) - 6)
    assert fs.read_bytes(path, len(data) + 100) == b""


def test_pread_pwrite_and_truncate(fs, d):
    path = f"{d}/p"
    with fs.open(path, "w+b") as f:
        assert f.pwrite(b"0123456789", 0) == 10 and f.tell() == 0
        f.pwrite(b"AB", CHUNK - 1)  # across a chunk boundary
        assert f.pread(3, CHUNK - 2) == b"\0AB"
        assert f.truncate(5) == 5 and f.tell() == 0
        assert f.read() == b"01234"
        f.truncate(CHUNK + 10)  # extends with zeros
        f.seek(0)
        assert f.read() == b"01234" + bytes(CHUNK + 5)
    assert fs.stat(path).st_size == CHUNK + 10
    fs.truncate(path, 3)
    assert fs.read_bytes(path) == b"012"
    with fs.open(path, "rb") as f:
        assert f.read(100) == b"012"  # short at EOF


def test_flush_makes_writes_visible_to_new_opens(fs, d):
    path = f"{d}/flushed"
    f = fs.open(path, "wb")
    f.write(b"x" * 1000)
    assert fs.stat(path).st_size == 0  # still in the buffer
    f.flush()
    assert fs.stat(path).st_size == 1000 and fs.read_bytes(path) == b"x" * 1000
    f.write(b"y")
    f.fsync()
    assert fs.read_bytes(path) == b"x" * 1000 + b"y"
    f.close()
    f.close()
    with pytest.raises(ValueError):
        f.write(b"z")


def test_two_clients_see_each_others_writes_after_close(cluster, fs, d):
    path = f"{d}/shared"
    with threefs.connect(cluster[1], admin=True) as other:
        data = os.urandom(5 * CHUNK + 7)
        with fs.open(path, "wb") as f:
            f.write(data)
        assert other.stat(path).st_size == len(data)
        assert other.read_bytes(path) == data
        with other.open(path, "r+b") as f:
            f.seek(CHUNK)
            f.write(b"B" * 10)
            f.seek(0, os.SEEK_END)
            f.write(b"tail")
        expected = data[:CHUNK] + b"B" * 10 + data[CHUNK + 10 :] + b"tail"
        with fs.open(path) as f:
            assert f.read() == expected
        assert other.listdir(d) == ["shared"]


def test_namespace_calls(fs, d):
    fs.makedirs(f"{d}/a/b/c")
    fs.makedirs(f"{d}/a/b", exist_ok=True)
    with pytest.raises(FileExistsError):
        fs.makedirs(f"{d}/a/b")
    with pytest.raises(FileExistsError):
        fs.mkdir(f"{d}/a")
    fs.write_bytes(f"{d}/a/f1", b"1")
    fs.write_bytes(f"{d}/a/b/f2", b"22")
    assert fs.listdir(f"{d}/a") == ["b", "f1"]
    entries = {e.name: e for e in fs.scandir(f"{d}/a")}
    assert entries["b"].is_dir() and entries["f1"].is_file() and entries["f1"].stat().st_size == 1
    assert entries["f1"].path == f"{d}/a/f1" and entries["f1"].inode() == fs.stat(f"{d}/a/f1").st_ino
    assert list(fs.walk(f"{d}/a")) == [
        (f"{d}/a", ["b"], ["f1"]),
        (f"{d}/a/b", ["c"], ["f2"]),
        (f"{d}/a/b/c", [], []),
    ]
    assert [p for p, _, _ in fs.walk(f"{d}/a", topdown=False)] == [f"{d}/a/b/c", f"{d}/a/b", f"{d}/a"]
    assert fs.exists(f"{d}/a") and fs.isdir(f"{d}/a") and not fs.isfile(f"{d}/a")
    assert fs.isfile(f"{d}/a/f1") and not fs.exists(f"{d}/nope") and not fs.exists(f"{d}/a/f1/x")

    # rename replaces a file, refuses with noreplace, exchanges
    fs.write_bytes(f"{d}/a/f3", b"333")
    fs.rename(f"{d}/a/f3", f"{d}/a/f1")
    assert fs.read_bytes(f"{d}/a/f1") == b"333" and not fs.exists(f"{d}/a/f3")
    fs.write_bytes(f"{d}/a/f3", b"3")
    with pytest.raises(FileExistsError):
        fs.rename(f"{d}/a/f3", f"{d}/a/f1", noreplace=True)
    fs.rename(f"{d}/a/f3", f"{d}/a/f1", exchange=True)
    assert fs.read_bytes(f"{d}/a/f1") == b"3" and fs.read_bytes(f"{d}/a/f3") == b"333"
    with pytest.raises(OSError) as info:
        fs.rename(f"{d}/a/b/c", f"{d}/a")  # over a non-empty directory (its ancestor)
    assert info.value.errno in (errno.ENOTEMPTY, errno.EINVAL, errno.ELOOP)

    # remove / rmdir / rmtree
    with pytest.raises(IsADirectoryError):
        fs.remove(f"{d}/a/b")
    with pytest.raises(NotADirectoryError):
        fs.rmdir(f"{d}/a/f1")
    with pytest.raises(OSError) as info:
        fs.rmdir(f"{d}/a/b")
    assert info.value.errno == errno.ENOTEMPTY
    fs.unlink(f"{d}/a/f3")
    fs.rmdir(f"{d}/a/b/c")
    with pytest.raises(NotADirectoryError):
        fs.rmtree(f"{d}/a/f1")
    fs.rmtree(f"{d}/a")
    assert fs.listdir(d) == []
    with pytest.raises(FileNotFoundError):
        fs.remove(f"{d}/a")


def test_links_and_attributes(fs, d):
    fs.write_bytes(f"{d}/target", b"data")
    fs.symlink("target", f"{d}/sym")
    assert fs.readlink(f"{d}/sym") == "target" and fs.islink(f"{d}/sym") and not fs.islink(f"{d}/target")
    assert stat.S_ISLNK(fs.lstat(f"{d}/sym").st_mode) and stat.S_ISREG(fs.stat(f"{d}/sym").st_mode)
    assert fs.read_bytes(f"{d}/sym") == b"data"
    fs.link(f"{d}/target", f"{d}/hard")
    assert fs.stat(f"{d}/hard").st_nlink == 2 and fs.stat(f"{d}/hard").st_ino == fs.stat(f"{d}/target").st_ino
    fs.chmod(f"{d}/target", 0o600)
    assert stat.S_IMODE(fs.stat(f"{d}/hard").st_mode) == 0o600
    fs.chown(f"{d}/target", 1234, -1)
    assert (fs.stat(f"{d}/target").st_uid, fs.stat(f"{d}/target").st_gid) == (1234, 0)
    fs.utime(f"{d}/target", (1_000_000, 2_000_000))
    result = fs.stat(f"{d}/target")
    assert (result.st_atime, result.st_mtime) == (1_000_000, 2_000_000)
    fs.utime(f"{d}/target", ns=(5, 7))
    assert fs.stat(f"{d}/target").st_mtime_ns == 7
    assert fs.realpath(f"{d}/sym") == f"{d}/target"


def test_errors_map_to_os_errors(cluster, fs, d):
    fs.write_bytes(f"{d}/file", b"x")
    with pytest.raises(IsADirectoryError):
        fs.open(d, "wb")
    with pytest.raises(IsADirectoryError):
        fs.open(d, "rb")
    with pytest.raises(NotADirectoryError):
        fs.stat(f"{d}/file/x")
    with pytest.raises(FileNotFoundError) as info:
        fs.stat(f"{d}/missing")
    assert info.value.filename == f"{d}/missing"
    with pytest.raises(NotADirectoryError):
        fs.listdir(f"{d}/file")
    fs.chmod(d, 0o755)
    stranger = Caller(uid=4242, gid=4242)
    with threefs.connect(cluster[1], caller=stranger) as other:
        with pytest.raises(PermissionError):
            other.open(f"{d}/new", "wb")
        assert other.read_bytes(f"{d}/file") == b"x"


def test_read_ranges_across_files(fs, d):
    contents = {f"{d}/r{i}": os.urandom(i * CHUNK + 1000 * i + 1) for i in range(4)}
    for path, data in contents.items():
        fs.write_bytes(path, data)
    ranges = [
        (f"{d}/r3", 0, 3 * CHUNK + 3001),
        (f"{d}/r1", CHUNK - 10, 50),
        (f"{d}/r2", 5, 0),
        (f"{d}/r0", 0, 100),  # a 1-byte file: short
        (f"{d}/r2", 2 * CHUNK, 10_000),  # crosses EOF
        (f"{d}/r1", 10 * CHUNK, 10),  # past EOF: empty
        (f"{d}/r3", CHUNK + 1, 2 * CHUNK),
    ]
    expected = [contents[p][o : o + n] for p, o, n in ranges]
    assert fs.read_ranges(ranges) == expected
    assert fs.read_ranges([]) == []
    with pytest.raises(FileNotFoundError):
        fs.read_ranges([(f"{d}/r1", 0, 1), (f"{d}/missing", 0, 1)])
    with pytest.raises(IsADirectoryError):
        fs.read_ranges([(d, 0, 1)])
    with pytest.raises(OSError) as info:
        fs.read_ranges([(f"{d}/r1", -1, 1)])
    assert info.value.errno == errno.EINVAL


def test_many_threads_share_one_file_system(fs, d):
    def work(n: int) -> bool:
        data = os.urandom(CHUNK + n * 997)
        path = f"{d}/thread{n}"
        with fs.open(path, "wb") as f:
            f.write(data)
        return fs.read_bytes(path) == data and fs.stat(path).st_size == len(data)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, range(16)))
    assert len(fs.listdir(d)) == 16


def test_files_work_with_io_expecting_code(fs, d):
    lines = b"".join(b"line %d\n" % i for i in range(1000))
    with fs.open(f"{d}/text", "wb") as f:
        assert f.writable() and not f.readable() and f.seekable()
        with io.BufferedWriter(f, buffer_size=100) as buffered:
            buffered.write(lines)
    with fs.open(f"{d}/text") as f:
        assert f.readline() == b"line 0\n" and f.readline(3) == b"lin" and f.readline() == b"e 1\n"
        assert list(f)[-1] == b"line 999\n"
    with fs.open(f"{d}/text") as source, fs.open(f"{d}/copy", "wb") as target:
        shutil.copyfileobj(source, target, length=4096)
    assert fs.read_bytes(f"{d}/copy") == lines
    reader = io.BufferedReader(fs.open(f"{d}/copy"), buffer_size=1 << 16)
    reader.seek(7)
    assert reader.read(7) == b"line 1\n" and reader.peek(1)[:1] == b"l"
    reader.close()
    wrapper = io.TextIOWrapper(fs.open(f"{d}/copy"), encoding="ascii")
    assert wrapper.readlines()[999] == "line 999\n"
    wrapper.close()
    f = fs.open(f"{d}/copy")
    f.close()
    assert f.closed
    with pytest.raises(ValueError):
        f.read()
    with pytest.raises(io.UnsupportedOperation):
        fs.open(f"{d}/copy").fileno()
