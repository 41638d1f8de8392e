"""Crash-test helper: writes to a DiskChunkStore until killed, acknowledging every commit.

``python chunkstore_crash_writer.py TARGET_DIR SEED`` opens the store (fsync=False), prints
``ready``, then forever applies random writes, truncates, retried prepares and aborts to a few
chunks. After each commit returns it prints ``ack INODE INDEX VERSION CRC32C`` (flushed), where
the checksum is of the whole chunk as this process models it, computed independently of the store.
"""

from __future__ import annotations

import os
import random
import sys

from crc32c import crc32c

from storage.store import ChunkId, DiskChunkStore

CHUNK_SIZE = 1 << 20
CHUNKS = [ChunkId(inode, index) for inode in (1, 2) for index in range(3)]


def apply(old: bytes, offset: int, data: bytes, truncate_to: int | None) -> bytes:
    buf = bytearray(old)
    if data:
        buf.extend(bytes(max(0, offset - len(buf))))
        buf[offset : offset + len(data)] = data
    if truncate_to is not None:
        del buf[truncate_to:]
        buf.extend(bytes(truncate_to - len(buf)))
    return bytes(buf)


def main(argv: list[str]) -> None:
    root, seed = argv[1], int(argv[2])
    rng = random.Random(seed)
    store = DiskChunkStore.open(root, fsync=False)
    model = {cid: store.read(cid, 0, CHUNK_SIZE) if store.get_meta(cid) else b"" for cid in CHUNKS}
    print("ready", flush=True)
    while True:
        chunk_id = rng.choice(CHUNKS)
        meta = store.get_meta(chunk_id)
        version = (meta.commit_version if meta is not None else 0) + 1
        kind = rng.random()
        offset, data, truncate_to = 0, b"", None
        if kind < 0.25:
            data = os.urandom(CHUNK_SIZE)  # full chunk
        elif kind < 0.85:
            offset = rng.randrange(CHUNK_SIZE)
            data = os.urandom(rng.randint(1, min(256 << 10, CHUNK_SIZE - offset)))
        else:
            truncate_to = rng.randrange(CHUNK_SIZE + 1)
        for _ in range(2 if rng.random() < 0.1 else 1):  # sometimes a retried prepare
            store.prepare(
                chunk_id,
                update_version=version,
                chain_version=1,
                chunk_size=CHUNK_SIZE,
                offset=offset,
                data=data,
                truncate_to=truncate_to,
            )
        roll = rng.random()
        if roll < 0.1:
            store.abort(chunk_id, version)
        elif roll < 0.15:
            pass  # left pending: the next update of this chunk replaces it
        else:
            store.commit(chunk_id, version)
            model[chunk_id] = apply(model[chunk_id], offset, data, truncate_to)
            print(f"ack {chunk_id.inode} {chunk_id.index} {version} {crc32c(model[chunk_id])}", flush=True)


if __name__ == "__main__":
    main(sys.argv)
