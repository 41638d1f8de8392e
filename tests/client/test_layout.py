"""threefs.layout: the SplitMix64 / Fisher-Yates placement is deterministic and pinned by golden
values (other languages must reproduce them), uses every chain of the stripe, and byte ranges
split into chunk spans exactly."""

from __future__ import annotations

import os
import subprocess
import sys

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from threefs.errors import Code, ThreeFSError
from threefs.layout import (
    MAX_CHUNK_INDEX,
    ChunkSpan,
    Layout,
    chunk_count,
    split_range,
    splitmix64,
    stripe_permutation,
    stripe_positions,
    table_position,
)

MIB = 1 << 20


def test_splitmix64_matches_the_published_reference_sequence():
    # Reference outputs of SplitMix64 seeded with 1234567 (Vigna's splitmix64.c).
    expected = [
        6457827717110365317,
        3203168211198807973,
        9817491932198370423,
        4593380528125082431,
        16408922859458223821,
    ]
    state, outputs = 1234567, []
    for _ in expected:
        state, value = splitmix64(state)
        outputs.append(value)
    assert outputs == expected


@pytest.mark.parametrize(
    ("stripe", "seed", "golden"),
    [
        (1, 12345, (0,)),
        (5, 2**64 - 1, (2, 0, 3, 4, 1)),
        (8, 0, (2, 5, 0, 3, 4, 6, 1, 7)),
        (8, 42, (3, 1, 6, 2, 4, 0, 7, 5)),
        (16, 7, (14, 6, 4, 2, 5, 11, 13, 1, 3, 12, 15, 10, 8, 0, 9, 7)),
    ],
)
def test_stripe_permutation_golden_values(stripe, seed, golden):
    # Frozen: changing these moves every existing file's chunks.
    assert stripe_permutation(stripe, seed) == golden


def test_placement_golden_values_with_a_base_that_wraps_around_the_table():
    layout = Layout(table_id=1, table_version=1, chunk_size=MIB, stripe_size=4, base_index=6, seed=99)
    assert stripe_positions(layout, 8) == [0, 7, 6, 1]
    assert [table_position(layout, i, 8) for i in range(9)] == [0, 7, 6, 1, 0, 7, 6, 1, 0]


def test_placement_is_the_same_in_a_fresh_interpreter():
    code = "from threefs.layout import stripe_permutation as p; print(p(64, 2**63 + 5), p(7, 3))"
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == f"{stripe_permutation(64, 2**63 + 5)} {stripe_permutation(7, 3)}"


@given(
    stripe=st.integers(1, 300),
    extra=st.integers(0, 50),
    base=st.integers(0, 10_000),
    seed=st.integers(0, 2**64 - 1),
)
def test_every_chain_of_the_slot_range_is_used_once(stripe, extra, base, seed):
    table_size = stripe + extra
    layout = Layout(table_id=3, table_version=2, stripe_size=stripe, base_index=base, seed=seed)
    positions = stripe_positions(layout, table_size)
    assert sorted(positions) == sorted((base + k) % table_size for k in range(stripe))
    assert [table_position(layout, i, table_size) for i in range(stripe)] == positions
    assert table_position(layout, stripe * 1000 + 3, table_size) == positions[3 % stripe]


def test_different_seeds_give_different_orders():
    orders = {stripe_permutation(16, seed) for seed in range(50)}
    assert len(orders) == 50


def test_a_table_smaller_than_the_stripe_or_an_index_out_of_range_is_refused():
    layout = Layout(table_id=1, table_version=1, stripe_size=4)
    for call in (
        lambda: stripe_positions(layout, 3),
        lambda: table_position(layout, 0, 3),
        lambda: table_position(layout, -1, 8),
        lambda: table_position(layout, MAX_CHUNK_INDEX + 1, 8),
    ):
        with pytest.raises(ThreeFSError) as caught:
            call()
        assert caught.value.code == Code.INVALID_ARG


@pytest.mark.parametrize(
    "fields",
    [
        {"chunk_size": (64 << 10) - 1},
        {"chunk_size": (64 << 20) + 1},
        {"stripe_size": 0},
        {"table_id": 0},
        {"table_version": 0},
        {"seed": -1},
        {"seed": 2**64},
        {"base_index": 2**32},
    ],
)
def test_layout_fields_out_of_range_are_refused(fields):
    values = {"table_id": 1, "table_version": 1, **fields}
    with pytest.raises(ThreeFSError) as caught:
        Layout(**values)
    assert caught.value.code == Code.INVALID_ARG
    if values.get("seed", 0) < 2**64:  # msgpack cannot even carry 2^64
        with pytest.raises(msgspec.ValidationError):
            msgspec.msgpack.decode(msgspec.msgpack.encode(values), type=Layout)


def test_layout_round_trips_through_msgpack():
    layout = Layout(
        table_id=2, table_version=3, chunk_size=4 * MIB, stripe_size=8, base_index=5, seed=2**64 - 1
    )
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(layout), type=Layout) == layout
    assert layout.max_file_size == 2**32 * 4 * MIB


def test_split_range_cuts_at_chunk_boundaries():
    layout = Layout(table_id=1, table_version=1, chunk_size=MIB)
    assert split_range(layout, MIB - 10, 2 * MIB) == [
        ChunkSpan(0, MIB - 10, 10, 0),
        ChunkSpan(1, 0, MIB, 10),
        ChunkSpan(2, 0, MIB - 10, MIB + 10),
    ]
    assert split_range(layout, 5 * MIB, MIB) == [ChunkSpan(5, 0, MIB, 0)]
    assert split_range(layout, 7, 0) == []
    with pytest.raises(ThreeFSError):
        split_range(layout, layout.max_file_size - 1, 2)
    with pytest.raises(ThreeFSError):
        split_range(layout, -1, 1)


@given(offset=st.integers(0, 50 * MIB), length=st.integers(0, 5 * MIB))
def test_split_range_covers_the_range_exactly(offset, length):
    layout = Layout(table_id=1, table_version=1, chunk_size=64 << 10)
    spans = split_range(layout, offset, length)
    assert sum(span.length for span in spans) == length
    position = 0
    for span in spans:
        assert span.position == position
        assert span.index * layout.chunk_size + span.offset == offset + position
        assert 0 < span.length and span.offset + span.length <= layout.chunk_size
        position += span.length


def test_chunk_count():
    layout = Layout(table_id=1, table_version=1, chunk_size=MIB)
    assert [chunk_count(layout, n) for n in (0, 1, MIB, MIB + 1)] == [0, 1, 1, 2]
