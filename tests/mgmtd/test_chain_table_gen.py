"""Chain-table generation: valid chains, balanced node pairs and heads, errors, determinism, speed,
and the balance benchmark's record."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mgmtd.components import generate_chains, head_counts, pair_balance
from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import ChainSpec

ROOT = Path(__file__).resolve().parents[2]


def cluster(node_count: int, targets_per_node: int) -> dict[int, list[int]]:
    return {node: [node * 1000 + i for i in range(targets_per_node)] for node in range(1, node_count + 1)}


def owners(nodes: dict[int, list[int]]) -> dict[int, int]:
    return {target: node for node, targets in nodes.items() for target in targets}


def check_valid(
    chains: list[ChainSpec], nodes: dict[int, list[int]], replication: int, first: int = 1
) -> None:
    """Every target once, chains of ``replication`` targets on distinct nodes, ids consecutive."""
    node_of = owners(nodes)
    assert [chain.chain_id for chain in chains] == list(range(first, first + len(chains)))
    assert sorted(t for chain in chains for t in chain.target_ids) == sorted(node_of)
    for chain in chains:
        assert len(chain.target_ids) == replication
        assert len({node_of[t] for t in chain.target_ids}) == replication


def ideal_bounds(node_count: int, chain_count: int, replication: int) -> tuple[int, int]:
    ideal = chain_count * replication * (replication - 1) / (node_count * (node_count - 1))
    return math.floor(ideal), math.ceil(ideal)


# Shapes whose N*T is a multiple of R; every one of them reaches the integer limit (measured with
# bench/chain_table_balance.py over N up to 64: no pair above ceil(ideal) or below floor(ideal)).
SHAPES = [
    (n, t, r)
    for r in (2, 3)
    for n in (3, 4, 5, 7, 8, 12, 16)
    for t in (1, 2, 3, 4, 6, 8, 12, 15, 16)
    if n >= r and n * t % r == 0
]


@pytest.mark.parametrize(("node_count", "targets_per_node", "replication"), SHAPES)
def test_pairs_share_chains_within_one_of_the_ideal(node_count, targets_per_node, replication):
    nodes = cluster(node_count, targets_per_node)
    chains = generate_chains(nodes, replication)
    check_valid(chains, nodes, replication)
    low, high, ratio = pair_balance(chains, owners(nodes))
    ideal_low, ideal_high = ideal_bounds(node_count, len(chains), replication)
    assert ideal_low <= low and high <= ideal_high
    assert ratio <= ideal_high / max(ideal_low, 1)
    # Heads: each node heads T/R chains, rounded either way.
    heads = head_counts(chains, owners(nodes)).values()
    quota = targets_per_node / replication
    assert math.floor(quota) <= min(heads) and max(heads) <= math.ceil(quota)


@pytest.mark.parametrize(
    ("node_count", "targets_per_node", "replication"), [(6, 4, 2), (9, 6, 3), (12, 3, 3)]
)
def test_consecutive_chains_have_different_heads(node_count, targets_per_node, replication):
    nodes = cluster(node_count, targets_per_node)
    chains = generate_chains(nodes, replication)
    node_of = owners(nodes)
    heads = [node_of[chain.target_ids[0]] for chain in chains]
    assert all(first != second for first, second in zip(heads, heads[1:], strict=False))
    # Each window of N/R chains (a stripe across the cluster) has N/R distinct heads.
    window = node_count // replication
    assert all(len(set(heads[i : i + window])) == window for i in range(0, len(heads), window))


def test_replication_one_makes_one_chain_per_target():
    nodes = cluster(4, 3)
    chains = generate_chains(nodes, 1, first_chain_id=100)
    check_valid(chains, nodes, 1, first=100)
    assert pair_balance(chains, owners(nodes)) == (0, 0, 1.0)
    assert set(head_counts(chains, owners(nodes)).values()) == {3}


def test_the_same_input_gives_the_same_table():
    nodes = cluster(16, 6)
    shuffled = {node: list(reversed(nodes[node])) for node in sorted(nodes, reverse=True)}
    assert generate_chains(nodes, 3) == generate_chains(shuffled, 3)


def test_uneven_nodes_still_give_valid_chains():
    nodes = {
        1: [1, 2, 3, 4, 5, 6],
        2: [7, 8],
        3: [9, 10, 11],
        4: [12],
        5: [13, 14, 15, 16],
        6: [],
        7: [17, 18],
    }
    chains = generate_chains(nodes, 3)
    check_valid(chains, {node: targets for node, targets in nodes.items() if targets}, 3)
    # Node 1 holds 6 of the 18 targets, so it is in every one of the 6 chains; it heads two.
    assert head_counts(chains, owners(nodes))[1] == 2


def test_a_node_holding_exactly_its_share_is_in_every_chain():
    nodes = {1: [1, 2, 3, 4], 2: [5, 6], 3: [7, 8]}
    chains = generate_chains(nodes, 2)
    check_valid(chains, nodes, 2)
    assert all(1 in {owners(nodes)[t] for t in chain.target_ids} for chain in chains)
    assert pair_balance(chains, owners(nodes)) == (0, 2, 2.0)  # (2, 3) cannot share a chain


@pytest.mark.parametrize(
    ("nodes", "replication", "code", "words"),
    [
        ({1: [1, 2], 2: [3, 4]}, 3, Code.MGMTD_INVALID_TOPOLOGY, "at least 3 nodes"),
        ({1: [1], 2: [2], 3: [3], 4: [4]}, 3, Code.MGMTD_INVALID_TOPOLOGY, "4 targets cannot"),
        ({1: [1, 2, 3, 4], 2: [5], 3: [6]}, 2, Code.MGMTD_INVALID_TOPOLOGY, "node 1 holds 4 of 6"),
        ({1: [1, 2], 2: [2, 3]}, 1, Code.INVALID_ARG, "target id 2"),
        ({1: [0, 1]}, 1, Code.INVALID_ARG, "target id 0"),
        ({1: [1], 2: [2]}, 0, Code.INVALID_ARG, "replication must be"),
        ({1: [1, 2, 3], 2: []}, 2, Code.MGMTD_INVALID_TOPOLOGY, "at least 2 nodes"),
    ],
)
def test_impossible_requests_are_refused(nodes, replication, code, words):
    with pytest.raises(ThreeFSError) as info:
        generate_chains(nodes, replication)
    assert info.value.code == code
    assert words in info.value.message


def test_chain_ids_must_fit():
    with pytest.raises(ThreeFSError) as info:
        generate_chains(cluster(2, 2), 2, first_chain_id=0)
    assert info.value.code == Code.INVALID_ARG
    with pytest.raises(ThreeFSError):
        generate_chains(cluster(2, 2), 2, first_chain_id=2**32 - 1)
    assert generate_chains(cluster(2, 2), 2, first_chain_id=2**32 - 2)[-1].chain_id == 2**32 - 1


def test_pair_balance_and_head_counts_by_hand():
    node_of = {1: 1, 2: 2, 3: 3, 4: 1, 5: 2, 6: 1, 7: 3}
    chains = [
        ChainSpec(chain_id=1, target_ids=[1, 2]),
        ChainSpec(chain_id=2, target_ids=[5, 4]),
        ChainSpec(chain_id=3, target_ids=[6, 7]),
    ]
    assert pair_balance(chains, node_of) == (0, 2, 2.0)  # (1,2): 2, (1,3): 1, (2,3): 0
    assert head_counts(chains, node_of) == {1: 2, 2: 1, 3: 0}
    assert pair_balance(chains[:1], node_of) == (1, 1, 1.0)
    assert pair_balance([], node_of) == (0, 0, 1.0)


@pytest.mark.parametrize(
    ("node_count", "targets_per_node", "replication"), [(64, 16, 2), (64, 15, 3), (63, 16, 3)]
)
def test_large_clusters_are_fast(node_count, targets_per_node, replication):
    nodes = cluster(node_count, targets_per_node)
    started = time.perf_counter()
    chains = generate_chains(nodes, replication)
    assert time.perf_counter() - started < 2.0  # measured 0.05-0.1 s
    check_valid(chains, nodes, replication)
    assert pair_balance(chains, owners(nodes))[1] == 1  # sparse: no pair shares two chains


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=10),
    st.integers(1, 3),
)
def test_random_clusters_give_valid_chains_or_a_clear_refusal(sizes, replication):
    nodes = {node + 1: [(node + 1) * 100 + i for i in range(size)] for node, size in enumerate(sizes)}
    used = [size for size in sizes if size]
    total = sum(used)
    possible = (
        len(used) >= replication and total % replication == 0 and max(used, default=0) <= total // replication
    )
    if not possible:
        with pytest.raises(ThreeFSError) as info:
            generate_chains(nodes, replication)
        assert info.value.code == Code.MGMTD_INVALID_TOPOLOGY
        return
    chains = generate_chains(nodes, replication)
    check_valid(chains, {node: targets for node, targets in nodes.items() if targets}, replication)


def test_the_balance_benchmark_reports_the_limit_reached():
    result = subprocess.run(
        [sys.executable, "bench/chain_table_balance.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) > 2, "a table must come before the JSON record"
    record = json.loads(lines[-1])
    for replication in (1, 2, 3):
        assert record[f"r{replication}_max_over_ceil_ideal"] == 0
        assert record[f"r{replication}_min_under_floor_ideal"] == 0
        assert record[f"r{replication}_worst_ratio"] <= record[f"r{replication}_worst_ideal_ratio"]
