"""File data through a real mount: reads and writes across chunks (64 KiB), offsets, holes,
truncate, append, O_TRUNC/O_EXCL, fsync, two handles, and a second client after close."""

from __future__ import annotations

import errno
import os
import random

import pytest

pytestmark = pytest.mark.slow

CHUNK = 64 << 10


def test_write_read_across_chunks(mounted) -> None:
    path = os.path.join(mounted.path, "big")
    data = random.Random(1).randbytes(5 * CHUNK + 12345)
    with open(path, "wb") as f:
        f.write(data)
    assert os.stat(path).st_size == len(data)
    with open(path, "rb") as f:
        assert f.read() == data
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset, length in [
            (0, 1),
            (CHUNK - 3, 7),
            (2 * CHUNK, CHUNK),
            (len(data) - 10, 100),
            (len(data), 5),
        ]:
            os.lseek(fd, offset, os.SEEK_SET)
            assert os.read(fd, length) == data[offset : offset + length]
        assert os.pread(fd, 10, len(data) + 1000) == b""
    finally:
        os.close(fd)


def test_pwrite_holes_and_overwrite(mounted) -> None:
    path = os.path.join(mounted.path, "sparse")
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.pwrite(fd, b"tail", 3 * CHUNK)
        os.pwrite(fd, b"head", 0)
        os.pwrite(fd, b"MID", CHUNK - 1)  # straddles a chunk boundary
        expected = bytearray(3 * CHUNK + 4)
        expected[0:4] = b"head"
        expected[CHUNK - 1 : CHUNK + 2] = b"MID"
        expected[3 * CHUNK :] = b"tail"
        assert os.fstat(fd).st_size == len(expected)
        assert os.pread(fd, len(expected) + 10, 0) == bytes(expected)
        os.fsync(fd)
    finally:
        os.close(fd)
    with open(path, "rb") as f:
        assert f.read() == bytes(expected)


def test_many_small_writes_are_buffered_and_read_back(mounted) -> None:
    path = os.path.join(mounted.path, "small")
    pieces = [bytes([i % 251]) * 4096 for i in range(100)]
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    for piece in pieces:
        assert os.write(fd, piece) == 4096
    os.close(fd)
    with open(path, "rb") as f:
        assert f.read() == b"".join(pieces)


def test_truncate_shrink_and_extend(mounted) -> None:
    path = os.path.join(mounted.path, "t")
    data = os.urandom(2 * CHUNK + 100)
    with open(path, "wb") as f:
        f.write(data)
    os.truncate(path, CHUNK + 5)
    assert os.stat(path).st_size == CHUNK + 5
    with open(path, "rb") as f:
        assert f.read() == data[: CHUNK + 5]
    fd = os.open(path, os.O_RDWR)
    try:
        os.ftruncate(fd, 3 * CHUNK)
        assert os.fstat(fd).st_size == 3 * CHUNK
        assert os.pread(fd, 3 * CHUNK, 0) == data[: CHUNK + 5] + bytes(3 * CHUNK - CHUNK - 5)
        os.pwrite(fd, b"zz", 10)
        os.ftruncate(fd, 5)  # buffered bytes past the new end must not come back
        assert os.pread(fd, 100, 0) == data[:5]
    finally:
        os.close(fd)
    assert os.stat(path).st_size == 5


def test_append_trunc_excl(mounted) -> None:
    path = os.path.join(mounted.path, "log")
    with open(path, "ab") as f:
        f.write(b"one\n")
    with open(path, "ab") as f:
        f.write(b"two\n")
    with open(path, "rb") as f:
        assert f.read() == b"one\ntwo\n"
    with open(path, "wb") as f:  # O_TRUNC
        f.write(b"new")
    with open(path, "rb") as f:
        assert f.read() == b"new"
    with pytest.raises(FileExistsError):
        os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    assert os.stat(path).st_size == 0


def test_two_handles_see_each_other(mounted) -> None:
    path = os.path.join(mounted.path, "shared")
    writer = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    reader = os.open(path, os.O_RDONLY)
    try:
        os.write(writer, b"abc" * 1000)
        assert os.pread(reader, 3000, 0) == b"abc" * 1000  # buffered bytes are sent before a read
        assert os.fstat(reader).st_size == 3000
    finally:
        os.close(writer)
        os.close(reader)


def test_second_client_sees_data_after_close(mounted) -> None:
    other = mounted.second_mount()
    data = os.urandom(3 * CHUNK + 7)
    with open(os.path.join(mounted.path, "f"), "wb") as f:
        f.write(data)
    with open(os.path.join(other.path, "f"), "rb") as f:
        assert f.read() == data
    assert os.stat(os.path.join(other.path, "f")).st_size == len(data)
    with open(os.path.join(other.path, "f"), "ab") as f:
        f.write(b"more")
    with open(os.path.join(mounted.path, "f"), "rb") as f:
        assert f.read() == data + b"more"


def test_data_survives_remount(mounted) -> None:
    data = os.urandom(CHUNK + 1)
    with open(os.path.join(mounted.path, "keep"), "wb") as f:
        f.write(data)
    mounted.remount()
    with open(os.path.join(mounted.path, "keep"), "rb") as f:
        assert f.read() == data


def test_directory_is_not_writable_as_a_file(mounted) -> None:
    os.mkdir(os.path.join(mounted.path, "d"))
    with pytest.raises(IsADirectoryError):
        os.open(os.path.join(mounted.path, "d"), os.O_WRONLY)
    with pytest.raises(OSError) as info:
        os.open(os.path.join(mounted.path, "missing", "x"), os.O_CREAT | os.O_WRONLY)
    assert info.value.errno == errno.ENOENT


def test_sequential_reads_use_read_ahead_without_going_stale(mounted) -> None:
    """Read-ahead keeps up to 4 MiB of a file read sequentially; a write through this mount, or a
    new open after another client's write, must never be answered from it."""
    path = os.path.join(mounted.path, "ahead")
    rng = random.Random(7)
    data = bytearray(rng.randbytes(40 * CHUNK))
    with open(path, "wb") as f:
        f.write(data)
    fd = os.open(path, os.O_RDWR)
    try:
        assert os.pread(fd, 4096, 0) == data[:4096]  # sequential from 0: fetches ahead
        assert os.pread(fd, 4096, 4096) == data[4096:8192]  # served from what was fetched
        os.pwrite(fd, b"X" * 100, 10_000)  # a write through this mount drops it
        data[10_000:10_100] = b"X" * 100
        assert os.pread(fd, 8192, 8192) == data[8192:16384]
        assert os.pread(fd, 4096, 16384) == data[16384:20480]
    finally:
        os.close(fd)
    other = mounted.second_mount()
    fd = os.open(path, os.O_RDONLY)
    try:
        assert os.pread(fd, 4096, 0) == data[:4096]  # read-ahead now holds 0..4 MiB
        with open(os.path.join(other.path, "ahead"), "r+b") as f:  # another client changes it
            f.seek(30_000)
            f.write(b"Y" * 50)
        data[30_000:30_050] = b"Y" * 50
        # close-to-open: a new open sees the other client's write, even while this mount
        # still holds the file open (and its read-ahead) through ``fd``
        with open(path, "rb") as f:
            assert f.read() == bytes(data)
    finally:
        os.close(fd)
