"""Data integrity in the style of fsx: thousands of random pwrite / truncate / read operations on
several files through the mount, with a shadow copy of every file in memory; every read, every
size and, at the end, every file after a remount (a cold kernel cache) and through a second mount
(another client) must match the shadow.

Operations straddle the test cluster's chunk boundaries (64 KiB chunks) and go through
descriptors that are now and then closed and reopened (``O_TRUNC`` sometimes), fsync'ed,
read through a read-only ``mmap``, or opened twice (two descriptors on one file). The seed is in
the failure message: ``FSX_SEED=N`` replays a run, ``FSX_OPS=N`` changes its length. Runs with
the default mount options and with the kernel's writeback cache plus attribute/entry timeouts.
"""

from __future__ import annotations

import mmap
import os
import random

import pytest

pytestmark = pytest.mark.slow

CHUNK = 64 << 10
FILES = 4
MAX_SIZE = 6 * CHUNK + 1234
OPERATIONS = int(os.environ.get("FSX_OPS", "2500"))


class FsxFile:
    """One file on the mount, its descriptors and its shadow."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.shadow = bytearray()
        self.fds = [os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)]

    def reopen(self, rng: random.Random) -> str:
        for fd in self.fds:
            os.close(fd)
        flags = os.O_RDWR
        if rng.random() < 0.1:
            flags |= os.O_TRUNC
            self.shadow.clear()
        self.fds = [os.open(self.path, flags) for _ in range(rng.choice((1, 1, 2)))]
        return f"reopen x{len(self.fds)}{' O_TRUNC' if flags & os.O_TRUNC else ''}"

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def _offset_and_length(rng: random.Random, limit: int) -> tuple[int, int]:
    """Mostly small I/O anywhere, sometimes large I/O, sometimes right around a chunk edge."""
    choice = rng.random()
    if choice < 0.2:
        edge = CHUNK * rng.randint(1, MAX_SIZE // CHUNK)
        offset = max(0, edge - rng.randint(0, 100))
    else:
        offset = rng.randint(0, limit)
    length = rng.randint(1, 2 * CHUNK + 100) if rng.random() < 0.2 else rng.randint(1, 5000)
    return offset, length


def _check_read(got: bytes, want: bytes, what: str) -> None:
    if got != want:
        first = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
        raise AssertionError(
            f"{what}: got {len(got)} bytes, expected {len(want)}; first differing byte at {first}"
        )


def _step(file: FsxFile, rng: random.Random) -> str:
    """One random operation on ``file``; returns its description (for the failure message)."""
    shadow = file.shadow
    fd = rng.choice(file.fds)
    kind = rng.random()
    if kind < 0.40:
        offset, length = _offset_and_length(rng, MAX_SIZE - 1)
        length = min(length, MAX_SIZE - offset)
        data = rng.randbytes(length)
        written = os.pwrite(fd, data, offset)
        assert written == length, f"pwrite returned {written}, expected {length}"
        if offset > len(shadow):
            shadow.extend(bytes(offset - len(shadow)))
        shadow[offset : offset + length] = data
        return f"pwrite {offset}+{length}"
    if kind < 0.75:
        offset, length = _offset_and_length(rng, len(shadow) + 100)
        what = f"pread {offset}+{length} (size {len(shadow)})"
        _check_read(os.pread(fd, length, offset), bytes(shadow[offset : offset + length]), what)
        return what
    if kind < 0.85:
        size = rng.choice((0, rng.randint(0, len(shadow) + 1), rng.randint(0, MAX_SIZE), CHUNK))
        os.ftruncate(fd, size)
        if size < len(shadow):
            del shadow[size:]
        else:
            shadow.extend(bytes(size - len(shadow)))
        return f"ftruncate {size}"
    if kind < 0.90:
        size = os.fstat(fd).st_size
        assert size == len(shadow), f"fstat size {size}, expected {len(shadow)}"
        return "fstat"
    if kind < 0.94:
        os.fsync(fd)
        return "fsync"
    if kind < 0.97 and shadow:
        with mmap.mmap(fd, len(shadow), prot=mmap.PROT_READ) as mapping:
            offset, length = _offset_and_length(rng, len(shadow) - 1)
            what = f"mmap read {offset}+{length} (size {len(shadow)})"
            _check_read(mapping[offset : offset + length], bytes(shadow[offset : offset + length]), what)
        return what
    return file.reopen(rng)


def _check_whole(path: str, shadow: bytes, what: str) -> None:
    with open(path, "rb") as stream:
        _check_read(stream.read(), shadow, f"{what}: {os.path.basename(path)}")
    assert os.stat(path).st_size == len(shadow), f"{what}: stat size of {path}"


@pytest.mark.parametrize(
    "options",
    [(), ("writeback", "attr_timeout=1", "entry_timeout=1")],
    ids=["defaults", "writeback-and-timeouts"],
)
def test_random_io_matches_the_shadow_copy(mount_factory, options):
    mounted = mount_factory(options=options)
    seed = int(os.environ.get("FSX_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    files = [FsxFile(os.path.join(mounted.path, f"fsx-{index}")) for index in range(FILES)]
    history: list[str] = []
    try:
        for number in range(OPERATIONS):
            file = rng.choice(files)
            try:
                history.append(f"{number}: {os.path.basename(file.path)} {_step(file, rng)}")
            except (AssertionError, OSError) as exc:
                recent = "\n".join(history[-15:])
                raise AssertionError(
                    f"FSX_SEED={seed}, operation {number} on {file.path}: {exc}\nrecent:\n{recent}"
                ) from exc
        for file in files:
            file.close()
            _check_whole(file.path, bytes(file.shadow), f"FSX_SEED={seed} after close")
    finally:
        for file in files:
            for fd in file.fds:
                os.close(fd)

    shadows = {file.path: bytes(file.shadow) for file in files}
    other = mounted.second_mount()
    for path, shadow in shadows.items():
        _check_whole(
            os.path.join(other.path, os.path.basename(path)), shadow, f"FSX_SEED={seed} second mount"
        )
    mounted.remount()
    for path, shadow in shadows.items():
        _check_whole(path, shadow, f"FSX_SEED={seed} after remount")
