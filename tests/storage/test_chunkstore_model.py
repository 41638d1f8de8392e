"""Model-based test: random operation sequences against both chunk stores and a plain dict model.

The model applies writes with its own (deliberately naive) byte arithmetic, so it checks the
shared rules in ``storage.store.rules`` rather than reusing them.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass

import hypothesis.strategies as st
from crc32c import crc32c
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from storage.store import ChunkId, ChunkState, ChunkStore, DiskChunkStore, MemChunkStore
from threefs.errors import Code, ThreeFSError

CS = 64 << 10
IDS = [ChunkId(1, 0), ChunkId(1, 1), ChunkId(2, 0)]
SETTINGS = settings(
    max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@dataclass
class ModelChunk:
    committed: bytes = b""
    commit_version: int = 0
    chain_version: int = 0
    pending: bytes | None = None
    pending_version: int = 0
    pending_chain_version: int = 0


def apply(old: bytes, offset: int, data: bytes, truncate_to: int | None, replace: bool) -> bytes:
    buf = bytearray() if replace else bytearray(old)
    if data:
        buf.extend(bytes(max(0, offset - len(buf))))
        buf[offset : offset + len(data)] = data
    if truncate_to is not None:
        del buf[truncate_to:]
        buf.extend(bytes(truncate_to - len(buf)))
    return bytes(buf)


offsets = st.sampled_from([0, 1, 100, 4095, CS // 2, CS - 10, CS - 1])
payloads = st.one_of(st.binary(max_size=300), st.integers(1, CS).map(lambda n: bytes([n % 251]) * n))


class ChunkStoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = self.open_store()
        self.model: dict[ChunkId, ModelChunk] = {}

    def open_store(self) -> ChunkStore:
        return MemChunkStore()

    def teardown(self) -> None:
        self.store.close()

    @rule(
        chunk_id=st.sampled_from(IDS),
        offset=offsets,
        data=payloads,
        truncate_to=st.one_of(st.none(), offsets),
        replace=st.booleans(),
        version_delta=st.sampled_from([1, 1, 1, 0, 2]),
        chain_version=st.integers(1, 3),
    )
    def prepare(self, chunk_id, offset, data, truncate_to, replace, version_delta, chain_version) -> None:
        chunk = self.model.get(chunk_id, ModelChunk())
        version = chunk.commit_version + version_delta
        if replace:
            offset = 0
        valid_version = version > chunk.commit_version and (replace or version == chunk.commit_version + 1)
        fits = offset + len(data) <= CS
        try:
            meta = self.store.prepare(
                chunk_id,
                update_version=version,
                chain_version=chain_version,
                chunk_size=CS,
                offset=offset,
                data=data,
                truncate_to=truncate_to,
                replace=replace,
            )
        except ThreeFSError as exc:
            expected = Code.STORAGE_BAD_OFFSET if not fits else Code.STORAGE_STALE_UPDATE
            assert (not fits or not valid_version) and exc.code == expected, exc
            return
        assert fits and valid_version
        chunk.pending = apply(chunk.committed, offset, data, truncate_to, replace)
        chunk.pending_version, chunk.pending_chain_version = version, chain_version
        if chunk_id not in self.model:
            chunk.chain_version = chain_version
        self.model[chunk_id] = chunk
        assert (meta.pending_length, meta.pending_crc32c) == (len(chunk.pending), crc32c(chunk.pending))

    @rule(chunk_id=st.sampled_from(IDS), version_delta=st.sampled_from([0, 0, 1, -1]))
    def commit(self, chunk_id, version_delta) -> None:
        chunk = self.model.get(chunk_id)
        if chunk is None:
            return
        version = (chunk.pending_version or chunk.commit_version + 1) + version_delta
        try:
            self.store.commit(chunk_id, version)
        except ThreeFSError as exc:
            assert exc.code == Code.STORAGE_STALE_UPDATE and version != chunk.pending_version
            assert version > chunk.commit_version
            return
        if chunk.pending is not None and version == chunk.pending_version:
            chunk.committed, chunk.commit_version = chunk.pending, version
            chunk.chain_version = chunk.pending_chain_version
            chunk.pending, chunk.pending_version = None, 0
        else:
            assert version <= chunk.commit_version

    @rule(chunk_id=st.sampled_from(IDS))
    def abort(self, chunk_id) -> None:
        chunk = self.model.get(chunk_id)
        version = chunk.pending_version if chunk is not None and chunk.pending is not None else 1
        result = self.store.abort(chunk_id, version)
        if chunk is None:
            assert result is None
        elif chunk.pending is not None:
            chunk.pending, chunk.pending_version = None, 0
            if chunk.commit_version == 0:
                del self.model[chunk_id]
                assert result is None

    @rule(chunk_id=st.sampled_from(IDS))
    def remove(self, chunk_id) -> None:
        assert self.store.remove(chunk_id) == (self.model.pop(chunk_id, None) is not None)

    @invariant()
    def matches_model(self) -> None:
        metas = self.store.list_meta()
        assert [m.chunk_id for m in metas] == sorted(self.model)
        used = 0
        for meta in metas:
            chunk = self.model[meta.chunk_id]
            assert (meta.commit_version, meta.length) == (chunk.commit_version, len(chunk.committed))
            assert meta.crc32c == (crc32c(chunk.committed) if chunk.commit_version else 0)
            dirty = chunk.pending is not None
            assert meta.state == (ChunkState.DIRTY if dirty else ChunkState.COMMITTED)
            assert meta.update_version == (chunk.pending_version if dirty else chunk.commit_version)
            assert meta.chain_version == (chunk.pending_chain_version if dirty else chunk.chain_version)
            assert self.store.read(meta.chunk_id, 0, CS) == chunk.committed
            used += len(chunk.committed) + (len(chunk.pending) if dirty else 0)
        assert (self.store.space().used_bytes, self.store.space().chunk_count) == (used, len(metas))


class DiskChunkStoreMachine(ChunkStoreMachine):
    def open_store(self) -> ChunkStore:
        self.root = tempfile.mkdtemp(prefix="chunkstore-model-")
        return DiskChunkStore.open(self.root, fsync=False, fd_cache_size=2)

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = DiskChunkStore.open(self.root, fsync=False, fd_cache_size=2)

    def teardown(self) -> None:
        super().teardown()
        shutil.rmtree(self.root, ignore_errors=True)


TestMemChunkStoreModel = ChunkStoreMachine.TestCase
TestMemChunkStoreModel.settings = SETTINGS
TestDiskChunkStoreModel = DiskChunkStoreMachine.TestCase
TestDiskChunkStoreModel.settings = SETTINGS
