"""Chain-table generation: group storage targets into replication chains on distinct nodes so that
every pair of nodes shares about the same number of chains (DESIGN.md section 6).

Why pairs: when a node fails, each of its chains is resynced from the chain's other replicas, so
the number of chains a node shares with each other node is the share of recovery traffic that
node serves. Equal pair counts spread a failed node's recovery evenly over all the others.

Method: a greedy pass builds the chains one at a time, each on the nodes with the most targets
left (which always leaves a valid completion), preferring nodes that share the fewest chains with
those already picked; a local search then swaps replicas between chains while that lowers the
sum of squared pair counts, working on the pairs above or below the ideal, with a short walk
over equal-cost swaps to leave local optima; heads are spread over nodes by moving heads along
augmenting paths; the chains are ordered so consecutive chain ids have different heads. The
output depends only on the input (the walk's ties are broken by a seeded LCG, not ``random``).
``bench/chain_table_balance.py`` prints the balance reached over a grid of cluster shapes: every
shape of N <= 64 nodes with equal target counts reaches the integer limit (no pair above
ceil(ideal) or below floor(ideal)), in about 0.1 s or less.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, deque
from collections.abc import Iterator, Mapping, Sequence

from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import ChainSpec

_MAX_CHAIN_ID = 2**32 - 1
_WALK_EVALUATIONS = 300_000  # swaps the escape walk may evaluate (about 0.5 s of CPU at most)
_WALK_STALL = 300  # walk steps without a better table before giving up


def generate_chains(
    nodes: Mapping[int, Sequence[int]], replication: int, *, first_chain_id: int = 1
) -> list[ChainSpec]:
    """Chains of ``replication`` targets each, numbered from ``first_chain_id``, head first.

    ``nodes`` maps node id -> that node's target ids (nodes without targets are ignored). Every
    target is used exactly once, the targets of a chain are on distinct nodes, each node heads
    about 1/replication of its targets' chains, and pairs of nodes share near-equal numbers of
    chains. The result depends only on the input. Raises ``ThreeFSError``: INVALID_ARG for a
    replication below 1, a bad ``first_chain_id`` or a target id listed twice;
    MGMTD_INVALID_TOPOLOGY when no such chains exist (fewer nodes than ``replication``, a target
    count not divisible by it, or a node holding more targets than there would be chains).
    """
    node_ids, targets = _validate(nodes, replication, first_chain_id)
    capacity = [len(targets[node]) for node in node_ids]
    members = _greedy_chains(capacity, replication)
    if replication > 1:
        _balance_pairs(members, len(node_ids))
    heads = _balance_heads(members, capacity, replication)
    chains = []
    for index in _interleave_by_head(heads, len(node_ids)):
        head = heads[index]
        chains.append([head] + [node for node in members[index] if node != head])
    next_target = [iter(sorted(targets[node])) for node in node_ids]
    return [
        ChainSpec(chain_id=first_chain_id + index, target_ids=[next(next_target[node]) for node in chain])
        for index, chain in enumerate(chains)
    ]


def pair_balance(chains: Sequence[ChainSpec], target_to_node: Mapping[int, int]) -> tuple[int, int, float]:
    """``(min, max, ratio)`` of the number of chains each pair of nodes shares, over the nodes
    holding the chains' targets. ``ratio = max / max(min, 1)``: a pair sharing no chain counts as
    one, so a sparse table (fewer chains than node pairs, some pairs necessarily share none) where
    no pair shares two chains scores 1.0. With one node, or chains of one target, ``(0, 0, 1.0)``.
    """
    counts: Counter[tuple[int, int]] = Counter()
    used: set[int] = set()
    for chain in chains:
        chain_nodes = sorted(target_to_node[target] for target in chain.target_ids)
        used.update(chain_nodes)
        counts.update(itertools.combinations(chain_nodes, 2))
    pairs = list(itertools.combinations(sorted(used), 2))
    if not pairs or not counts:
        return 0, 0, 1.0
    values = [counts[pair] for pair in pairs]
    low, high = min(values), max(values)
    return low, high, high / max(low, 1)


def head_counts(chains: Sequence[ChainSpec], target_to_node: Mapping[int, int]) -> dict[int, int]:
    """How many of ``chains`` each node heads; every node holding a chain target is listed."""
    used = {target_to_node[target] for chain in chains for target in chain.target_ids}
    counts = dict.fromkeys(sorted(used), 0)
    for chain in chains:
        counts[target_to_node[chain.target_ids[0]]] += 1
    return counts


# ----------------------------------------------------------------------------- internals
# Nodes are indexes 0..N-1 into the sorted node ids; a chain is the list of its nodes.


def _validate(
    nodes: Mapping[int, Sequence[int]], replication: int, first_chain_id: int
) -> tuple[list[int], dict[int, list[int]]]:
    if replication < 1:
        raise ThreeFSError(Code.INVALID_ARG, f"replication must be at least 1, not {replication}")
    seen: set[int] = set()
    for node, node_targets in nodes.items():
        for target in node_targets:
            if target in seen or target < 1:
                raise ThreeFSError(Code.INVALID_ARG, f"target id {target} (node {node}) is repeated or < 1")
            seen.add(target)
    node_ids = sorted(node for node, node_targets in nodes.items() if node_targets)
    total = len(seen)
    if len(node_ids) < replication:
        raise ThreeFSError(
            Code.MGMTD_INVALID_TOPOLOGY,
            f"replication {replication} needs targets on at least {replication} nodes, not {len(node_ids)}",
        )
    if total % replication:
        raise ThreeFSError(
            Code.MGMTD_INVALID_TOPOLOGY, f"{total} targets cannot form chains of {replication}"
        )
    chain_count = total // replication
    fullest = max(node_ids, key=lambda node: len(nodes[node]))
    if len(nodes[fullest]) > chain_count:
        raise ThreeFSError(
            Code.MGMTD_INVALID_TOPOLOGY,
            f"node {fullest} holds {len(nodes[fullest])} of {total} targets, more than the "
            f"{chain_count} chains of {replication}: its replicas cannot all be on distinct nodes",
        )
    if first_chain_id < 1 or first_chain_id + chain_count - 1 > _MAX_CHAIN_ID:
        raise ThreeFSError(Code.INVALID_ARG, f"chain ids from {first_chain_id} do not fit in 1..2^32-1")
    return node_ids, {node: list(nodes[node]) for node in node_ids}


def _greedy_chains(capacity: list[int], replication: int) -> list[list[int]]:
    """Chains built one at a time. A node with as many targets left as there are chains left must
    be in the next chain; after that, the nodes with the most targets left, then the fewest
    chains shared with the nodes already picked, then a rotating order. Keeping every node's
    remaining targets at most the remaining chains is what guarantees completion (place the
    targets node by node into chains round-robin)."""
    node_count = len(capacity)
    left = list(capacity)
    shared = [[0] * node_count for _ in range(node_count)]
    chains: list[list[int]] = []
    chains_left = sum(capacity) // replication
    for index in range(chains_left):
        chain = [node for node in range(node_count) if left[node] == chains_left - index]
        while len(chain) < replication:
            candidates = [node for node in range(node_count) if left[node] and node not in chain]
            chain.append(
                min(
                    candidates,
                    key=lambda node: (
                        -left[node],
                        sum(shared[node][other] for other in chain),
                        (node - index) % node_count,
                    ),
                )
            )
        for node in chain:
            left[node] -= 1
        for first, second in itertools.combinations(chain, 2):
            shared[first][second] += 1
            shared[second][first] += 1
        chains.append(chain)
    return chains


def _balance_pairs(chains: list[list[int]], node_count: int) -> None:
    """Local search on ``chains`` (in place): swap two nodes between two chains (which keeps every
    node's chain count and distinct nodes per chain) while that lowers the sum of squared pair
    counts, trying only swaps that move a pair above ceil(ideal) or below floor(ideal). If such
    pairs remain, a walk takes the best swap that does not raise the sum (pseudo-random among
    equals) for a pseudo-random such pair, then descends again, within fixed budgets of evaluated
    swaps and of steps without progress; the best table seen is kept."""
    search = _PairSearch(chains, node_count)
    search.descend()
    best, best_chains = search.badness(), [list(chain) for chain in chains]
    random = _Lcg(node_count * 1_000_003 + len(chains))
    stalled = 0
    while best and stalled < _WALK_STALL and search.evaluations < _WALK_EVALUATIONS:
        stalled += 1
        bad = search.bad_pairs()
        u, v = bad[random.below(len(bad))]
        options = [(search.gain(*move), move) for move in search.moves(u, v)]
        options = [option for option in options if option[0] <= 0]
        if not options:
            continue
        least = min(gain for gain, _ in options)
        options = [move for gain, move in options if gain == least]
        search.swap(*options[random.below(len(options))])
        search.descend()
        badness = search.badness()
        if badness < best:
            best, best_chains, stalled = badness, [list(chain) for chain in chains], 0
    chains[:] = best_chains


class _PairSearch:
    """The local search's state: the chains (changed in place), how many chains each pair of
    nodes shares, and the chains of each node."""

    def __init__(self, chains: list[list[int]], node_count: int) -> None:
        self.chains = chains
        self.node_count = node_count
        self.shared = [[0] * node_count for _ in range(node_count)]
        self.chains_of: list[set[int]] = [set() for _ in range(node_count)]
        for index, chain in enumerate(chains):
            for node in chain:
                self.chains_of[node].add(index)
            for first, second in itertools.combinations(chain, 2):
                self.shared[first][second] += 1
                self.shared[second][first] += 1
        replication = len(chains[0])
        ideal = len(chains) * replication * (replication - 1) / (node_count * (node_count - 1))
        self.low, self.high = math.floor(ideal), math.ceil(ideal)
        self.evaluations = 0

    def gain(self, x: int, a: int, y: int, b: int) -> int:
        """Half the change of the sum of squared pair counts if ``a`` (in chain x) and ``b`` (in
        chain y) swapped; a node in both chains keeps its pairs with a and b."""
        self.evaluations += 1
        shared, chain_x, chain_y = self.shared, self.chains[x], self.chains[y]
        change = 0
        for c in chain_x:
            if c != a and c not in chain_y:
                change += shared[b][c] - shared[a][c] + 1
        for d in chain_y:
            if d != b and d not in chain_x:
                change += shared[a][d] - shared[b][d] + 1
        return change

    def swap(self, x: int, a: int, y: int, b: int) -> None:
        shared = self.shared
        for chain, old, new in ((self.chains[x], a, b), (self.chains[y], b, a)):
            for c in chain:
                if c != old:
                    shared[old][c] -= 1
                    shared[c][old] -= 1
                    shared[new][c] += 1
                    shared[c][new] += 1
        self.chains[x][self.chains[x].index(a)] = b
        self.chains[y][self.chains[y].index(b)] = a
        self.chains_of[a].remove(x)
        self.chains_of[a].add(y)
        self.chains_of[b].remove(y)
        self.chains_of[b].add(x)

    def bad_pairs(self) -> list[tuple[int, int]]:
        """Pairs sharing more than ceil(ideal) or fewer than floor(ideal) chains."""
        shared, low, high = self.shared, self.low, self.high
        return [
            (u, v)
            for u, v in itertools.combinations(range(self.node_count), 2)
            if not low <= shared[u][v] <= high
        ]

    def badness(self) -> int:
        """How far the pair counts are outside [floor(ideal), ceil(ideal)], summed."""
        shared, low, high = self.shared, self.low, self.high
        return sum(
            max(shared[u][v] - high, low - shared[u][v], 0)
            for u, v in itertools.combinations(range(self.node_count), 2)
        )

    def moves(self, u: int, v: int) -> Iterator[tuple[int, int, int, int]]:
        """Swaps ``(x, a, y, b)`` that separate u and v (too many shared chains): a in {u, v}
        leaves a chain x they share for a node b, taken first among those sharing least with x;
        or that bring them together (too few): v comes into a chain x of u for a node a."""
        chains, chains_of, shared = self.chains, self.chains_of, self.shared
        if shared[u][v] > self.high:
            for x in sorted(chains_of[u] & chains_of[v]):
                for a in (u, v):
                    rest = [c for c in chains[x] if c != a]
                    others = sorted(
                        (b for b in range(self.node_count) if b not in chains[x]),
                        key=lambda b: sum(shared[b][c] for c in rest),
                    )
                    for b in others:
                        for y in sorted(chains_of[b] - chains_of[a]):
                            yield x, a, y, b
        else:
            for x in sorted(chains_of[u] - chains_of[v]):
                for a in chains[x]:
                    if a != u:
                        for y in sorted(chains_of[v] - chains_of[a]):
                            yield x, a, y, v

    def descend(self) -> None:
        """First-improvement descent over the moves of every unbalanced pair, to a local optimum."""
        improved = True
        while improved:
            improved = False
            for u, v in self.bad_pairs():
                if not self.low <= self.shared[u][v] <= self.high:
                    for move in self.moves(u, v):
                        if self.gain(*move) < 0:
                            self.swap(*move)
                            improved = True
                            break


class _Lcg:
    """Knuth's MMIX linear congruential generator: a fixed, seeded sequence for tie-breaking in
    the local search, so that the same input always gives the same table."""

    def __init__(self, seed: int) -> None:
        self.state = seed & 0xFFFF_FFFF_FFFF_FFFF

    def below(self, bound: int) -> int:
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & 0xFFFF_FFFF_FFFF_FFFF
        return (self.state >> 33) % bound


def _balance_heads(chains: list[list[int]], capacity: list[int], replication: int) -> list[int]:
    """One head per chain (a member node), each node heading close to capacity/replication
    chains: greedy, then heads moved along augmenting paths from the most loaded node while
    that lowers the sum of squared excesses."""
    quota = [count / replication for count in capacity]
    load = [0] * len(capacity)
    heads = []
    for chain in chains:
        head = min(chain, key=lambda node: (load[node] + 1 - quota[node], node))
        load[head] += 1
        heads.append(head)
    headed_by: list[list[int]] = [[] for _ in capacity]
    for index, head in enumerate(heads):
        headed_by[head].append(index)

    def relieve(source: int) -> bool:
        """Move one head from ``source`` to a less loaded node along an augmenting path."""
        excess = load[source] - quota[source]
        came_from: dict[int, tuple[int, int]] = {source: (-1, -1)}
        queue = deque([source])
        while queue:
            node = queue.popleft()
            for index in headed_by[node]:
                for other in chains[index]:
                    if other in came_from:
                        continue
                    came_from[other] = (node, index)
                    if load[other] + 1 - quota[other] < excess - 1e-9:
                        load[source] -= 1
                        load[other] += 1
                        while other != source:
                            previous, moved = came_from[other]
                            headed_by[previous].remove(moved)
                            headed_by[other].append(moved)
                            heads[moved] = other
                            other = previous
                        return True
                    queue.append(other)
        return False

    while any(relieve(node) for node in sorted(range(len(capacity)), key=lambda n: quota[n] - load[n])):
        pass
    return heads


def _interleave_by_head(heads: list[int], node_count: int) -> list[int]:
    """Chain indexes reordered round by round: the first chain headed by each node, then the
    second, ... so that consecutive chains (a file's stripe) have different heads."""
    headed_by: list[list[int]] = [[] for _ in range(node_count)]
    for index, head in enumerate(heads):
        headed_by[head].append(index)
    rounds = itertools.zip_longest(*headed_by)
    return [index for chain_round in rounds for index in chain_round if index is not None]
