"""SIGKILL a process writing to a DiskChunkStore at random moments; nothing acknowledged is lost."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

from crc32c import crc32c

from storage.store import ChunkState, DiskChunkStore
from storage.store.disk import chunk_file

WRITER = Path(__file__).with_name("chunkstore_crash_writer.py")
REPO = Path(__file__).resolve().parents[2]
ROUNDS = 5


def run_and_kill(root: Path, seed: int, delay: float, log: Path) -> list[tuple[int, int, int, int]]:
    """Run the writer for ``delay`` seconds after it is ready, SIGKILL it, return its acks."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(WRITER), str(root), str(seed)], stdout=out, env=env)
        try:
            deadline = time.monotonic() + 20
            while not log.read_bytes().startswith(b"ready\n"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"writer never became ready (exit {proc.returncode})")
                time.sleep(0.01)
            time.sleep(delay)
        finally:
            proc.kill()
            proc.wait()
    lines = log.read_bytes().split(b"\n")[1:-1]  # the last piece may be a half-written line
    return [tuple(int(field) for field in line.split()[1:]) for line in lines]  # type: ignore[misc]


def check_store(root: Path, acked: dict[tuple[int, int], tuple[int, int]]) -> int:
    """Reopen the target and check it; returns how many chunks were left pending."""
    store = DiskChunkStore.open(root, fsync=False)
    try:
        metas = {(m.chunk_id.inode, m.chunk_id.index): m for m in store.list_meta()}
        for key, (version, crc) in acked.items():
            meta = metas[key]
            assert meta.commit_version >= version, (key, meta, version)
            if meta.commit_version == version:
                assert meta.crc32c == crc, (key, meta, crc)
        expected_files = set()
        pending = 0
        for meta in metas.values():
            data = store.read(meta.chunk_id, 0, meta.chunk_size)
            assert (len(data), crc32c(data)) == (meta.length, meta.crc32c), meta
            if meta.commit_version:
                expected_files.add(chunk_file(str(root), meta.chunk_id, meta.commit_version))
            if meta.state == ChunkState.DIRTY:  # kept only when verified whole
                pending += 1
                assert meta.update_version == meta.commit_version + 1
                path = chunk_file(str(root), meta.chunk_id, meta.update_version)
                content = Path(path).read_bytes()
                assert (len(content), crc32c(content)) == (meta.pending_length, meta.pending_crc32c)
                expected_files.add(path)
        assert {str(p) for p in (root / "data").rglob("*") if p.is_file()} == expected_files
        space = store.space()
        assert space.used_bytes == sum(m.length + m.pending_length for m in metas.values())
        return pending
    finally:
        store.close()


def test_sigkill_never_loses_an_acknowledged_commit(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    root = tmp_path / "target"
    acked: dict[tuple[int, int], tuple[int, int]] = {}
    total_acks = 0
    for round_number in range(ROUNDS):
        acks = run_and_kill(root, seed + round_number, rng.uniform(0.05, 0.5), tmp_path / "acks.log")
        for inode, index, version, crc in acks:
            acked[(inode, index)] = (version, crc)
        total_acks += len(acks)
        check_store(root, acked)
    assert total_acks > 0, f"seed {seed}: the writer never committed anything"
