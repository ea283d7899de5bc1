"""Search's candidate stage against scoring every product: the same answers, and the cost per search at scale.

    python -m benchmarks.search_candidates [--seed 30] [--queries 400] [--sizes 44446 1000000] [--no-write]

`SearchIndex.find` scores every product below `exact_below` products (50,000) and, above, only the candidates of
`deepshelf.content.candidates` (the products nearest by text vector among those the parsed filters pass, from an
IVF index over 8-bit vectors; BM25's best matches; the search log's picks). Both ways run here side by side:

At each size (`--sizes`; product i is fashion product i mod 44,446: its name, labels and text vector, as
benchmarks/lib/shop.attach_search builds the served benchmark's shop; the stage forced on at 44,446):
1. Agreement: the understood-search evaluation's test queries (benchmarks/search_understanding.py, same seed:
   shoppers' words, half misspelt) and literal product names; P@10 of every named attribute each way, the share of
   queries whose top-10 scores are the same (tied products may differ), and the mean overlap of the top 10.
2. Cost: `--scale-queries` shoppers' queries (`shop.search_queries`: 1 to 3 words of a real name, 20% misspelt,
   10% made-up words), each searched both ways one after the other (order alternating), one thread; CPU ms per
   search (the query's encoding by the served query encoder included, the same for both), wall p50 / p99, and the
   build time of each index.
"""

from __future__ import annotations

import os
import time

import numpy as np

from benchmarks.lib.cli import docs_option, parser, publish
from benchmarks.lib.mdsection import machine
from benchmarks.lib.noise import jitter_probe, probe_text
from benchmarks.search_understanding import ATTRS, catalogue, forms, make_queries, precision
from deepshelf.content.search import EXACT_BELOW, QUERY_BACKEND, SearchIndex
from deepshelf.encoders.text import TextEncoder


def index(ids, texts, vectors, labels, exact_below: int, encoder) -> tuple[SearchIndex, float]:
    t = time.perf_counter()
    n = len(ids)
    out = SearchIndex(ids, texts, vectors, np.zeros((n, 1), np.float32), np.zeros(n, bool), None, encoder=encoder,
                      attributes=labels, exact_below=exact_below)
    return out, time.perf_counter() - t


def agreement(exact: SearchIndex, fast: SearchIndex, queries, labels, exclude=None) -> dict:
    rows = {"exact": [], "fast": []}
    same, overlap = [], []
    for q, _ in queries:
        e_rows, e_scores, _ = exact.find(q, 11 if exclude is not None else 10, by="text")
        f_rows, f_scores, _ = fast.find(q, 11 if exclude is not None else 10, by="text")
        rows["exact"].append(e_rows.tolist())
        rows["fast"].append(f_rows.tolist())
        same.append(len(e_scores) == len(f_scores) and np.allclose(e_scores, f_scores, atol=1e-5))
        overlap.append(len(set(e_rows[:10].tolist()) & set(f_rows[:10].tolist())) / max(1, min(10, len(e_rows))))
    return {"p10": {k: precision(v, queries, labels, exclude) for k, v in rows.items()},
            "same": float(np.mean(same)), "overlap": float(np.mean(overlap)), "n": len(queries)}


def cost(exact: SearchIndex, fast: SearchIndex, queries: list[str]) -> dict:
    for q in queries[:20]:  # warm: encoder, caches of words seen before
        exact.find(q, 10, by="text"), fast.find(q, 10, by="text")
    cpu = {"exact": 0.0, "fast": 0.0}
    wall = {"exact": [], "fast": []}
    for i, q in enumerate(queries[20:]):
        for side in (("exact", "fast") if i % 2 == 0 else ("fast", "exact")):
            ix = exact if side == "exact" else fast
            c, t = time.process_time(), time.perf_counter()
            ix.find(q, 10, by="text")
            wall[side].append(1000 * (time.perf_counter() - t))
            cpu[side] += time.process_time() - c
    n = len(queries) - 20
    return {s: {"cpu_ms": 1000 * cpu[s] / n, "p50": float(np.percentile(wall[s], 50)),
                "p99": float(np.percentile(wall[s], 99))} for s in cpu}


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--seed", type=int, default=30)
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--literal", type=int, default=300)
    ap.add_argument("--sizes", type=int, nargs="*", default=[44_446, 1_000_000])
    ap.add_argument("--scale-queries", type=int, default=520)
    docs_option(ap)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread, as a server process searches
    load = os.getloadavg()
    from benchmarks.lib.shop import search_queries

    ids, texts, names, labels = catalogue()
    vectors = TextEncoder().encode(texts)  # from the encoder cache (computed once)
    encoder = TextEncoder(backend=QUERY_BACKEND, cache=False)  # the served query encoder; queries not cached
    f = forms(labels, ("dev", "test"), args.seed)
    test = make_queries(labels, f["test"], args.queries, args.seed + 2)
    lit = np.random.default_rng(args.seed).choice(len(ids), args.literal, replace=False)
    literal = [(names[i], {a: {labels[a][i]} for a in ATTRS if labels[a][i] not in ("", "NA")}) for i in lit]
    queries = search_queries(args.scale_queries, seed=args.seed)
    probe_before = jitter_probe(5)
    results = {}
    for n in args.sizes:
        take = np.arange(n) % len(texts)
        big = {a: v[take] for a, v in labels.items()}
        rows = (np.array([f"p{i}" for i in range(n)]), [texts[j] for j in take], vectors[take], big)
        exact, exact_s = index(*rows, 10**12, encoder)
        fast, fast_s = index(*rows, 0, encoder)
        results[n] = {"shoppers' words (test)": agreement(exact, fast, test, big),
                      "literal names": agreement(exact, fast, literal, big, lit.tolist()),
                      "cost": cost(exact, fast, queries), "build": (exact_s, fast_s)}
        del exact, fast
        print(n, results[n], flush=True)
    probe_after = jitter_probe(5)

    out = ["Command: `python -m benchmarks.search_candidates --seed "
           f"{args.seed} --queries {args.queries} --sizes {' '.join(map(str, args.sizes))}`  ",
           f"Machine: {machine()}; load average {load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; "
           f"measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.  ",
           f"Served default: every product scored below {EXACT_BELOW:,} products, the candidate stage from there.",
           "", "| products | queries | P@10 all named, every product | P@10, candidates | same top-10 scores | "
           "top-10 overlap |", "|---:|---|---:|---:|---:|---:|"]
    for n, r in results.items():
        for name in ("shoppers' words (test)", "literal names"):
            a = r[name]
            out.append(f"| {n:,} | {name} ({a['n']}) | {a['p10']['exact'][0]:.3f} | {a['p10']['fast'][0]:.3f} | "
                       f"{a['same']:.1%} | {a['overlap']:.3f} |")
    out += ["", f"Cost per search, {args.scale_queries - 20} shoppers' queries each way, one thread:", "",
            "| products | every product: CPU ms / search | p50 / p99 ms | candidates: CPU ms / search | "
            "p50 / p99 ms | CPU ratio | index build s (both ways) |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for n, r in results.items():
        e, c = r["cost"]["exact"], r["cost"]["fast"]
        out.append(f"| {n:,} | {e['cpu_ms']:.1f} | {e['p50']:.1f} / {e['p99']:.1f} | {c['cpu_ms']:.1f} | "
                   f"{c['p50']:.1f} / {c['p99']:.1f} | {e['cpu_ms'] / c['cpu_ms']:.1f}x | "
                   f"{r['build'][0]:.0f} / {r['build'][1]:.0f} |")
    out += ["", f"Noise probe before: {probe_text(probe_before)}; after: {probe_text(probe_after)}."]
    publish("\n".join(out), args, "Search at catalogue scale", sub="Candidate stage (search_candidates.py)")


if __name__ == "__main__":
    main()
