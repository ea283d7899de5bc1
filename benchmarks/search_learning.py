"""Search learning from what shoppers do: P@10 of every attribute a query names on LATER days' queries, the search
as served (query understanding on) with and without the tables learnt from earlier days' search log.

    DEEPSHELF_CACHE_DIR=/work/cache python -m benchmarks.search_learning [--seed 29] [--queries 2400] [--no-write]

No real search log exists for the fashion catalogue (44,446 products, text only), so one is simulated with planted
structure: shoppers' queries are generated as in benchmarks/search_understanding.py (templates over article type,
colour and gender, the catalogue's words or shoppers' own from benchmarks/data/shopper_words.toml, half with a
misspelling), spread over `--days` days. Each query is answered by today's search (understanding on, no learning),
the top `--shown` products are the page the shopper sees, and the shopper clicks a shown product that has every
attribute they meant with chance `--click` x 1 / (1 + position / 5) (attention falls down the page) and, as noise,
a shown product that does not with chance `--noise`; a matching click is bought with chance 0.2. The first days
train (`SearchFeedback.fit`, as a run trained from a store does), the next day tunes the two weights (attribute and
query -> product), the last `--test-days` days are measured once, each query scored with and without learning.
"""

from __future__ import annotations

import os

# one thread for torch's query encoding, as `deepshelf serve` runs it: its idle worker threads otherwise spin on this
# 2-core machine and slow every numpy call after an encode a hundredfold
os.environ.setdefault("OMP_NUM_THREADS", "1")
import random
import sys
import time

import numpy as np
import polars as pl

from benchmarks.lib.cli import docs_option, parser, publish
from benchmarks.lib.mdsection import machine
from benchmarks.search_understanding import ATTRS, catalogue, forms, make_queries, precision
from deepshelf.content.feedback import FeedbackConfig, SearchFeedback
from deepshelf.content.search import SearchIndex
from deepshelf.encoders.text import TextEncoder


def answer(index: SearchIndex, queries, k: int, memo: dict | None = None) -> list[list[int]]:
    out = []
    for q, _ in queries:
        if memo is not None and q in memo:
            out.append(memo[q])
            continue
        rows = index.find(q, k, by="text")[0].tolist()
        if memo is not None:
            memo[q] = rows
        out.append(rows)
    return out


def simulate(shown: list[list[int]], queries, labels, ids, args, rng) -> pl.DataFrame:
    """The clicks and purchases of shoppers who meant each query's named attributes (planted), with noise."""
    rows = []
    for page, (q, named) in zip(shown, queries):
        for pos, r in enumerate(page):
            match = all(labels[a][r] in v for a, v in named.items())
            if rng.random() < (args.click / (1 + pos / 5) if match else args.noise):
                rows.append((q, ids[r], "view"))
                if match and rng.random() < 0.2:
                    rows.append((q, ids[r], "purchase"))
    return pl.DataFrame(rows, schema=["query", "item", "kind"], orient="row")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--seed", type=int, default=29)
    ap.add_argument("--queries", type=int, default=2400, help="queries over all days")
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--test-days", type=int, default=2)
    ap.add_argument("--shown", type=int, default=20, help="products on the page a shopper sees")
    ap.add_argument("--click", type=float, default=0.5)
    ap.add_argument("--noise", type=float, default=0.05)
    docs_option(ap)
    args = ap.parse_args()
    load = os.getloadavg()
    t0 = time.perf_counter()
    ids, texts, _, labels = catalogue()
    vectors = TextEncoder().encode(texts)  # the catalogue's vectors from the encoder cache (computed once)
    index = SearchIndex(ids, texts, vectors, np.zeros((len(ids), 1), np.float32), np.zeros(len(ids), bool), None,
                        encoder=TextEncoder(cache=False), attributes=labels)
    build_s = time.perf_counter() - t0
    f = forms(labels, ("dev", "test"), args.seed)
    words = {a: f["dev"][a] + f["test"][a] for a in ATTRS}  # the shoppers' population: every word, every day
    queries = make_queries(labels, words, args.queries, args.seed + 3)
    day = np.sort(np.random.default_rng(args.seed).integers(0, args.days, len(queries)))
    train_days, tune_day = args.days - args.test_days - 1, args.days - args.test_days - 1
    split = {"train": [q for q, d in zip(queries, day) if d < train_days],
             "tune": [q for q, d in zip(queries, day) if d == tune_day],
             "test": [q for q, d in zip(queries, day) if d > tune_day]}
    rng = random.Random(args.seed)
    memo: dict = {}
    t1 = time.perf_counter()
    pages = answer(index, split["train"], args.shown, memo)
    log = simulate(pages, split["train"], labels, ids, args, rng)
    print(f"log: {log.height} choices after {len(split['train'])} searches ({time.perf_counter() - t1:.0f} s)",
          file=sys.stderr, flush=True)
    base = {name: answer(index, split[name], 10, memo) for name in ("tune", "test")}
    t2 = time.perf_counter()
    learnt = SearchFeedback.fit(log, index.item_ids, index._rows.attributes)
    fit_s = time.perf_counter() - t2
    tuning = {}
    for aw in (0.05, 0.1, 0.2):
        for pw in (0.1, 0.3, 1.0):
            config = FeedbackConfig(attribute_weight=aw, pair_weight=pw)
            index.feedback = SearchFeedback(learnt.pairs, learnt.words, learnt.values, learnt.lifts, config,
                                            learnt.priors, learnt.chosen, learnt.info)
            tuning[(aw, pw)] = precision(answer(index, split["tune"], 10), split["tune"], labels)[0]
            print("tuning", aw, pw, tuning[(aw, pw)], file=sys.stderr, flush=True)
    best = max(tuning, key=lambda c: (tuning[c], -c[0], -c[1]))
    index.feedback = SearchFeedback(learnt.pairs, learnt.words, learnt.values, learnt.lifts,
                                    FeedbackConfig(attribute_weight=best[0], pair_weight=best[1]), learnt.priors,
                                    learnt.chosen, learnt.info)
    t3 = time.perf_counter()
    learned_test = answer(index, split["test"], 10)
    learned_s = (time.perf_counter() - t3) / max(1, len(split["test"]))
    default = FeedbackConfig()
    index.feedback = SearchFeedback(learnt.pairs, learnt.words, learnt.values, learnt.lifts, default,
                                    learnt.priors, learnt.chosen, learnt.info)
    default_test = answer(index, split["test"], 10)
    train_q = {q for q, _ in split["train"]}
    seen = [n for n, (q, _) in enumerate(split["test"]) if q in train_q]
    unseen = [n for n in range(len(split["test"])) if n not in set(seen)]

    def p(rows, which):
        qs = [split["test"][n] for n in which]
        return precision([rows[n] for n in which], qs, labels) if qs else (float("nan"), {})

    rows_table = []
    for label, which in (("all test queries", range(len(split["test"]))), ("typed before (same words)", seen),
                         ("never typed before", unseen)):
        which = list(which)
        b, l_, d = p(base["test"], which), p(learned_test, which), p(default_test, which)
        rows_table.append(f"| {label} | {len(which)} | {b[0]:.3f} | {l_[0]:.3f} | {d[0]:.3f} | "
                          + " | ".join(f"{b[1].get(a, float('nan')):.3f} -> {l_[1].get(a, float('nan')):.3f}"
                                       for a in ATTRS) + " |")
    b_all, l_all = p(base["test"], range(len(split["test"])))[0], p(learned_test, range(len(split["test"])))[0]
    lines = [f"Command: `DEEPSHELF_CACHE_DIR=/work/cache python -m benchmarks.search_learning --seed {args.seed} "
             f"--queries {args.queries}`  ",
             f"Machine: {machine()}; load average {load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; "
             f"measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; index build {build_s:.0f} s, "
             f"learning from the log {fit_s:.2f} s.  ",
             f"Simulated log: {len(queries):,} queries over {args.days} days (days 1-{train_days} train: "
             f"{len(split['train'])} searches, {log.height} clicks and purchases; day {tune_day + 1} tunes: "
             f"{len(split['tune'])}; days {tune_day + 2}-{args.days} test: {len(split['test'])}). Shoppers see the "
             f"top {args.shown}, click a product with every attribute they meant with chance {args.click} x "
             f"1 / (1 + position / 5), any other with chance {args.noise}; a matching click is bought with chance "
             f"0.2. Learnt: {learnt.info}.  ",
             "Weights (attribute, query -> product) on the tuning day, P@10 all named: " + ", ".join(
                 f"({a}, {w}): {v:.3f}" for (a, w), v in tuning.items()) + f" -> chosen {best}; the shipped "
             f"defaults are ({default.attribute_weight}, {default.pair_weight}).", "",
             "| test queries (later days) | n | P@10 all named, today | with learning (tuned) | with learning "
             "(defaults) | " + " | ".join(f"{a}: today -> learnt" for a in ATTRS) + " |",
             "|---|---:|---:|---:|---:|" + "---|" * len(ATTRS), *rows_table, "",
             f"Later days' queries, P@10 of every named attribute: **{l_all:.3f} with learning against {b_all:.3f} "
             f"without** ({l_all - b_all:+.3f}), understanding on in both. Search time per query with learning "
             f"{learned_s * 1e3:.1f} ms (shared machine: indicative). The log is simulated: the shoppers' intent "
             "is planted, so this measures whether the learning recovers planted structure from noisy clicks, "
             "not what a real shop's log would give."]
    publish("\n".join(lines), args, "Product understanding", sub="Search: learning from what shoppers do (fashion)")


if __name__ == "__main__":
    main()
