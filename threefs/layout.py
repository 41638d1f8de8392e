"""File layout math: which chain holds each chunk of a file, and how a byte range splits into chunks.

Pure functions, no I/O: the client and the meta service place chunks with the same code, and the
algorithm is specified exactly (docs/storage-client.md) so any language reproduces it.

Placement. A layout names a chain table version, a chunk size and a stripe: ``stripe_size``
consecutive positions of the table starting at ``base_index``. Chunk ``i`` of a file lives in
stripe slot ``i % stripe_size``; slot ``s`` maps to table position
``(base_index + permutation[s]) % table_size``, where ``permutation`` is a Fisher-Yates shuffle of
``0 .. stripe_size-1`` driven by SplitMix64 seeded with ``seed`` (never the runtime's ``random``,
whose algorithm differs across languages and versions)::

    state = seed
    perm = [0, 1, ..., stripe_size - 1]
    for i = stripe_size - 1 down to 1:
        state = (state + 0x9E3779B97F4A7C15) mod 2^64
        z = state
        z = ((z xor (z >> 30)) * 0xBF58476D1CE4E5B9) mod 2^64
        z = ((z xor (z >> 27)) * 0x94D049BB133111EB) mod 2^64
        z = z xor (z >> 31)
        j = z mod (i + 1)
        swap perm[i], perm[j]

Table positions are 0-based; ``stripe_size`` must not exceed the table's chain count, so a file's
slots name distinct chains.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, NamedTuple

import msgspec

from threefs.errors import Code, ThreeFSError

__all__ = [
    "MAX_CHUNK_INDEX",
    "MAX_CHUNK_SIZE",
    "MIN_CHUNK_SIZE",
    "ChunkSpan",
    "Layout",
    "chunk_count",
    "split_range",
    "splitmix64",
    "stripe_permutation",
    "stripe_positions",
    "table_position",
]

MIN_CHUNK_SIZE = 64 << 10
MAX_CHUNK_SIZE = 64 << 20
MAX_CHUNK_INDEX = 2**32 - 1  # a chunk index is a u32 on the wire
_MASK64 = 2**64 - 1

U32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
U64 = Annotated[int, msgspec.Meta(ge=0)]  # msgpack caps it at 2^64 - 1
PositiveU32 = Annotated[int, msgspec.Meta(ge=1, le=2**32 - 1)]
ChunkSize = Annotated[int, msgspec.Meta(ge=MIN_CHUNK_SIZE, le=MAX_CHUNK_SIZE)]


class Layout(msgspec.Struct, frozen=True, kw_only=True):
    """Where a file's chunks live: chain table ``table_id`` at ``table_version`` (a file pins
    its version so that a table growing later never moves its chunks), ``chunk_size`` bytes per
    chunk, striped over ``stripe_size`` table positions from ``base_index``, shuffled by
    ``seed``. Values out of range raise ``ThreeFSError(INVALID_ARG)`` on construction (and
    msgspec's validation error on decode)."""

    table_id: PositiveU32
    table_version: PositiveU32
    chunk_size: ChunkSize = 1 << 20
    stripe_size: PositiveU32 = 1
    base_index: U32 = 0
    seed: U64 = 0

    def __post_init__(self) -> None:
        if (
            1 <= self.table_id <= MAX_CHUNK_INDEX
            and 1 <= self.table_version <= MAX_CHUNK_INDEX
            and MIN_CHUNK_SIZE <= self.chunk_size <= MAX_CHUNK_SIZE
            and 1 <= self.stripe_size <= MAX_CHUNK_INDEX
            and 0 <= self.base_index <= MAX_CHUNK_INDEX
            and 0 <= self.seed <= _MASK64
        ):
            return  # every inode decode runs this: the common case without building the table
        checks = (
            ("table_id", 1 <= self.table_id <= MAX_CHUNK_INDEX),
            ("table_version", 1 <= self.table_version <= MAX_CHUNK_INDEX),
            ("chunk_size", MIN_CHUNK_SIZE <= self.chunk_size <= MAX_CHUNK_SIZE),
            ("stripe_size", 1 <= self.stripe_size <= MAX_CHUNK_INDEX),
            ("base_index", 0 <= self.base_index <= MAX_CHUNK_INDEX),
            ("seed", 0 <= self.seed <= _MASK64),
        )
        for name, ok in checks:
            if not ok:
                raise ThreeFSError(Code.INVALID_ARG, f"layout {name} out of range: {getattr(self, name)}")

    @property
    def max_file_size(self) -> int:
        """One past the last byte a file with this layout can hold (chunk indexes are u32)."""
        return (MAX_CHUNK_INDEX + 1) * self.chunk_size


def splitmix64(state: int) -> tuple[int, int]:
    """One SplitMix64 step: ``(next_state, output)``, both in ``[0, 2^64)``."""
    state = (state + 0x9E3779B97F4A7C15) & _MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return state, z ^ (z >> 31)


@lru_cache(maxsize=256)
def stripe_permutation(stripe_size: int, seed: int) -> tuple[int, ...]:
    """The shuffle of ``0 .. stripe_size-1`` for ``seed`` (see the module docstring)."""
    if not 1 <= stripe_size <= MAX_CHUNK_INDEX:
        raise ThreeFSError(Code.INVALID_ARG, f"stripe size out of range: {stripe_size}")
    if not 0 <= seed <= _MASK64:
        raise ThreeFSError(Code.INVALID_ARG, f"seed out of range: {seed}")
    perm = list(range(stripe_size))
    state = seed
    for i in range(stripe_size - 1, 0, -1):
        state, value = splitmix64(state)
        j = value % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return tuple(perm)


def _check_table_size(layout: Layout, table_size: int) -> None:
    if table_size < layout.stripe_size:
        raise ThreeFSError(
            Code.INVALID_ARG,
            f"stripe size {layout.stripe_size} exceeds chain table {layout.table_id} version "
            f"{layout.table_version} ({table_size} chains)",
        )


def table_position(layout: Layout, chunk_index: int, table_size: int) -> int:
    """The 0-based position, in the layout's chain table of ``table_size`` chains, of the chain
    that holds chunk ``chunk_index``. Raises INVALID_ARG for an index outside ``[0, 2^32)`` or a
    table smaller than the stripe."""
    if not 0 <= chunk_index <= MAX_CHUNK_INDEX:
        raise ThreeFSError(Code.INVALID_ARG, f"chunk index out of range: {chunk_index}")
    _check_table_size(layout, table_size)
    slot = chunk_index % layout.stripe_size
    return (layout.base_index + stripe_permutation(layout.stripe_size, layout.seed)[slot]) % table_size


def stripe_positions(layout: Layout, table_size: int) -> list[int]:
    """The table positions of slots ``0 .. stripe_size-1``: every chain a file can use, once each."""
    _check_table_size(layout, table_size)
    perm = stripe_permutation(layout.stripe_size, layout.seed)
    return [(layout.base_index + p) % table_size for p in perm]


class ChunkSpan(NamedTuple):
    """The part of a byte range that falls in one chunk: chunk ``index``, ``offset`` and
    ``length`` within the chunk, and ``position`` of its first byte within the range."""

    index: int
    offset: int
    length: int
    position: int


def split_range(layout: Layout, offset: int, length: int) -> list[ChunkSpan]:
    """The chunks that bytes ``[offset, offset + length)`` of a file touch, in order (empty for
    ``length`` 0). Raises INVALID_ARG for a negative offset or length, or a range past
    ``layout.max_file_size``."""
    if offset < 0 or length < 0:
        raise ThreeFSError(Code.INVALID_ARG, f"negative offset or length: {offset}, {length}")
    if offset + length > layout.max_file_size:
        raise ThreeFSError(
            Code.INVALID_ARG,
            f"range [{offset}, {offset + length}) passes the largest file size {layout.max_file_size}",
        )
    size = layout.chunk_size
    spans = []
    position = 0
    while position < length:
        index, within = divmod(offset + position, size)
        take = min(size - within, length - position)
        spans.append(ChunkSpan(index, within, take, position))
        position += take
    return spans


def chunk_count(layout: Layout, file_length: int) -> int:
    """How many chunk indexes a file of ``file_length`` bytes spans (``ceil(length / chunk)``)."""
    if file_length < 0:
        raise ThreeFSError(Code.INVALID_ARG, f"negative file length: {file_length}")
    return -(-file_length // layout.chunk_size)
