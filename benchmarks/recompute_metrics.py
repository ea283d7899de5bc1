"""Recompute leave-one-out HR@K / NDCG@K from a `deepshelf recommend` export and the raw sequences file.

Written independently of the deepshelf package (plain Python, csv and gzip only) so anyone can check the
numbers deepshelf reports:

    deepshelf recommend --run runs/NAME --users test --k 10 --output recs.csv
    python benchmarks/recompute_metrics.py --recs recs.csv --sequences ml-1m_user_sequences.txt.gz --min-item-count 5
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
from collections import Counter, defaultdict


def load_targets(path: str, min_item_count: int, which: str) -> dict[str, str]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        rows = [line.split() for line in f if line.strip()]
    counts = Counter(item for row in rows for item in row[1:])
    targets = {}
    for row in rows:
        items = [i for i in row[1:] if counts[i] >= min_item_count]
        if len(items) >= 3:
            targets[row[0]] = items[-1] if which == "test" else items[-2]
    return targets


def recompute(recs_path: str, targets: dict[str, str], k: int) -> dict[str, float]:
    ranked: dict[str, list[tuple[int, str]]] = defaultdict(list)
    with open(recs_path, newline="") as f:
        for row in csv.DictReader(f):
            ranked[row["user_id"]].append((int(row["rank"]), row["item_id"]))
    hr = ndcg = 0.0
    for user, target in targets.items():
        items = [item for _, item in sorted(ranked.get(user, []))[:k]]
        if target in items:
            rank = items.index(target)
            hr += 1
            ndcg += 1 / math.log2(rank + 2)
    n = len(targets)
    return {f"hr@{k}": hr / n, f"ndcg@{k}": ndcg / n, "users": n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recs", required=True)
    parser.add_argument("--sequences", required=True)
    parser.add_argument("--min-item-count", type=int, default=0)
    parser.add_argument("--users", default="test", choices=["test", "valid"])
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    targets = load_targets(args.sequences, args.min_item_count, args.users)
    print(json.dumps(recompute(args.recs, targets, args.k)))


if __name__ == "__main__":
    main()
