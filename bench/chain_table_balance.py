"""Chain-table balance: how evenly ``generate_chains`` spreads chains over node pairs and heads.

Run from the repository root: ``.venv/bin/python bench/chain_table_balance.py [--quick]``. For
each cluster shape (N nodes of T targets, replication R; shapes where N*T is not a multiple of R
have no table and are skipped) it prints the number of chains each node pair shares (min, max)
next to the limit, the ideal ``chains*R*(R-1)/2 / (N*(N-1)/2)`` with its integer bounds
floor..ceil, the ratio ``max / max(min, 1)`` next to the best ratio integer counts allow, the
spread of heads per node (max - min) next to its ideal, and the time taken. The last line is a
JSON record: per R, the worst ratio and how far any max exceeds ceil(ideal) or any min falls
below floor(ideal) (0 and 0: every shape reached the limit), plus the slowest generation.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

try:
    import mgmtd  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mgmtd.components.chain_table_gen import generate_chains, head_counts, pair_balance

NODE_COUNTS = (3, 4, 5, 8, 16, 32, 64)
TARGET_COUNTS = (1, 3, 4, 8, 12, 15, 16)
QUICK_NODE_COUNTS = (3, 5, 8)
QUICK_TARGET_COUNTS = (1, 3, 4)
REPLICATIONS = (1, 2, 3)


def measure(node_count: int, targets_per_node: int, replication: int) -> dict:
    """One shape's figures (targets numbered node * 1000 + index)."""
    nodes = {
        node: [node * 1000 + index for index in range(targets_per_node)] for node in range(1, node_count + 1)
    }
    started = time.perf_counter()
    chains = generate_chains(nodes, replication)
    seconds = time.perf_counter() - started
    target_to_node = {target: node for node, targets in nodes.items() for target in targets}
    low, high, ratio = pair_balance(chains, target_to_node)
    heads = head_counts(chains, target_to_node).values()
    pairs = node_count * (node_count - 1) / 2
    ideal = len(chains) * replication * (replication - 1) / 2 / pairs if replication > 1 else 0.0
    ideal_low, ideal_high = math.floor(ideal), math.ceil(ideal)
    quota = targets_per_node / replication
    return {
        "nodes": node_count,
        "targets_per_node": targets_per_node,
        "replication": replication,
        "chains": len(chains),
        "min_pair": low,
        "max_pair": high,
        "ideal_pair": ideal,
        "ideal_min": ideal_low,
        "ideal_max": ideal_high,
        "ratio": ratio,
        "ideal_ratio": ideal_high / max(ideal_low, 1) if replication > 1 else 1.0,
        "head_spread": max(heads) - min(heads),
        "ideal_head_spread": math.ceil(quota) - math.floor(quota),
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small grid (for the smoke test)")
    parser.add_argument("--out", default="", help="also write the JSON record to this file")
    args = parser.parse_args(argv)
    node_counts = QUICK_NODE_COUNTS if args.quick else NODE_COUNTS
    target_counts = QUICK_TARGET_COUNTS if args.quick else TARGET_COUNTS

    header = (
        f"{'N':>3} {'T':>3} {'R':>2} {'chains':>6} {'min':>4} {'max':>4} {'ideal':>7} {'limit':>7} "
        f"{'ratio':>6} {'limit':>6} {'heads':>5} {'limit':>5} {'ms':>7}"
    )
    print(header)
    rows = []
    for replication in REPLICATIONS:
        for node_count in node_counts:
            for targets_per_node in target_counts:
                if node_count < replication or node_count * targets_per_node % replication:
                    continue
                row = measure(node_count, targets_per_node, replication)
                rows.append(row)
                print(
                    f"{node_count:>3} {targets_per_node:>3} {replication:>2} {row['chains']:>6} "
                    f"{row['min_pair']:>4} {row['max_pair']:>4} {row['ideal_pair']:>7.2f} "
                    f"{str(row['ideal_min']) + '..' + str(row['ideal_max']):>7} {row['ratio']:>6.2f} "
                    f"{row['ideal_ratio']:>6.2f} {row['head_spread']:>5} {row['ideal_head_spread']:>5} "
                    f"{row['seconds'] * 1000:>7.1f}"
                )
    record: dict = {"shapes": len(rows), "max_seconds": round(max(row["seconds"] for row in rows), 4)}
    for replication in REPLICATIONS:
        mine = [row for row in rows if row["replication"] == replication]
        record[f"r{replication}_worst_ratio"] = round(max(row["ratio"] for row in mine), 3)
        record[f"r{replication}_worst_ideal_ratio"] = round(max(row["ideal_ratio"] for row in mine), 3)
        record[f"r{replication}_max_over_ceil_ideal"] = max(
            row["max_pair"] - row["ideal_max"] for row in mine
        )
        record[f"r{replication}_min_under_floor_ideal"] = max(
            row["ideal_min"] - row["min_pair"] for row in mine
        )
        record[f"r{replication}_head_spread_over_ideal"] = max(
            row["head_spread"] - row["ideal_head_spread"] for row in mine
        )
    if args.out:
        Path(args.out).write_text(json.dumps({"record": record, "rows": rows}, indent=2) + "\n")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
