"""The verifying workload of a chaos run: writers that record what was acknowledged, readers
that check it, through the library and through the FUSE mount.

Every file is written once, under a name no other attempt uses, with bytes that follow from
the run's seed and the name (``content``), so a reader knows what any file must hold. A write
is *acknowledged* when the call that finishes it returns: ``AsyncFileSystem.write_bytes`` for
the library, ``fsync`` and ``close`` for the mount. Only acknowledged files go into the
``Ledger``; a write that failed (a fault in the way) is counted and forgotten. Readers pick
acknowledged files at random while faults happen: a failed read counts as unavailable, bytes
that differ from the expected ones count as corrupt (that must never happen). ``verify_all``
reads every acknowledged file at the end through both paths.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from dataclasses import dataclass, field

import trio

from client.fs.async_fs import AsyncFileSystem

__all__ = ["Ack", "Ledger", "content", "fuse_reader", "fuse_writer", "library_reader", "library_writer"]

CHUNK = 64 << 10
SIZES = (0, 1, 4096, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17)
WRITE_TIMEOUT_S = 120.0  # a library write still unanswered after this is given up (not acked)


def content(seed: int, name: str, size: int) -> bytes:
    """The bytes file ``name`` holds in the run with ``seed``."""
    return random.Random(f"{seed}:{name}").randbytes(size)


@dataclass(frozen=True)
class Ack:
    name: str  # path from the root of the file system, e.g. "/lib/w0/f12"
    size: int
    digest: bytes
    via: str  # "library" or "fuse"
    at: float  # time.monotonic() of the acknowledgement


@dataclass
class Ledger:
    """What the workload did (shared by trio tasks and FUSE threads, hence the lock)."""

    seed: int
    acks: dict[str, Ack] = field(default_factory=dict)
    write_failures: dict[str, int] = field(default_factory=dict)  # error -> count
    reads_ok: int = 0
    reads_unavailable: int = 0
    corrupt: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acked(self, name: str, data: bytes, via: str) -> None:
        with self.lock:
            self.acks[name] = Ack(name, len(data), hashlib.sha256(data).digest(), via, time.monotonic())

    def failed(self, error: BaseException) -> None:
        key = f"{type(error).__name__}: {getattr(error, 'strerror', None) or error}"[:120]
        with self.lock:
            self.write_failures[key] = self.write_failures.get(key, 0) + 1

    def pick(self, rng: random.Random) -> Ack | None:
        with self.lock:
            if not self.acks:
                return None
            return self.acks[rng.choice(list(self.acks))]

    def checked(self, ack: Ack, data: bytes | None, where: str) -> None:
        """Count one read of ``ack`` (``data`` None: the read failed)."""
        with self.lock:
            if data is None:
                self.reads_unavailable += 1
            elif len(data) != ack.size or hashlib.sha256(data).digest() != ack.digest:
                self.corrupt.append(f"{where}: {ack.name} ({len(data)} bytes read, {ack.size} written)")
            else:
                self.reads_ok += 1


def _size(rng: random.Random) -> int:
    return rng.choice(SIZES) if rng.random() < 0.7 else rng.randrange(4 * CHUNK)


async def library_writer(fs: AsyncFileSystem, ledger: Ledger, writer: int, stop: trio.Event) -> None:
    """Write new files under ``/lib/w<writer>`` until ``stop``."""
    rng = random.Random(f"{ledger.seed}:lib-writer:{writer}")
    directory = f"/lib/w{writer}"
    await fs.makedirs(directory, exist_ok=True)
    index = 0
    while not stop.is_set():
        name = f"{directory}/f{index}"
        index += 1
        data = content(ledger.seed, name, _size(rng))
        try:
            with trio.fail_after(WRITE_TIMEOUT_S):
                await fs.write_bytes(name, data)
        except (OSError, trio.TooSlowError) as exc:
            ledger.failed(exc)
            await trio.sleep(0.2)
            continue
        ledger.acked(name, data, "library")


async def library_reader(fs: AsyncFileSystem, ledger: Ledger, reader: int, stop: trio.Event) -> None:
    """Read acknowledged files at random until ``stop``."""
    rng = random.Random(f"{ledger.seed}:lib-reader:{reader}")
    while not stop.is_set():
        ack = ledger.pick(rng)
        if ack is None:
            await trio.sleep(0.1)
            continue
        try:
            with trio.fail_after(WRITE_TIMEOUT_S):
                data = await fs.read_bytes(ack.name)
        except (OSError, trio.TooSlowError):
            data = None
        ledger.checked(ack, data, "library read")
        await trio.sleep(0.01)


def fuse_writer(mount: str, ledger: Ledger, writer: int, stop: threading.Event) -> None:
    """(A thread.) Write new files under ``<mount>/fuse/w<writer>`` with plain os calls."""
    rng = random.Random(f"{ledger.seed}:fuse-writer:{writer}")
    directory = f"/fuse/w{writer}"
    while not stop.is_set():
        try:
            os.makedirs(mount + directory, exist_ok=True)
            break
        except OSError as exc:
            ledger.failed(exc)
            time.sleep(0.5)
    index = 0
    while not stop.is_set():
        name = f"{directory}/f{index}"
        index += 1
        data = content(ledger.seed, name, _size(rng))
        try:
            fd = os.open(mount + name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            ledger.failed(exc)
            time.sleep(0.2)
            continue
        ledger.acked(name, data, "fuse")


def read_through_mount(mount: str, name: str) -> bytes:
    with open(mount + name, "rb") as file:
        return file.read()


def fuse_reader(mount: str, ledger: Ledger, reader: int, stop: threading.Event) -> None:
    """(A thread.) Read acknowledged files at random through the mount."""
    rng = random.Random(f"{ledger.seed}:fuse-reader:{reader}")
    while not stop.is_set():
        ack = ledger.pick(rng)
        if ack is None:
            time.sleep(0.1)
            continue
        try:
            data: bytes | None = read_through_mount(mount, ack.name)
        except OSError:
            data = None
        ledger.checked(ack, data, "mount read")
        time.sleep(0.01)
