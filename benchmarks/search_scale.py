"""Search at catalogue scale: the fallback text search (Store.search_titles, used by GET /v1/search when the run
has no semantic index) on a SQLite store of N synthetic products, before (the substring scan it used to run,
timed here on the same store) and after (the FTS5 index of migration 6).

    .venv/bin/python benchmarks/search_scale.py [--n 100000] [--queries 500] [--write]

Single thread, one query at a time, limit 2000 (what the service asks for). Queries are one or two adjacent words
of stored titles, some cut to a prefix, so both ways find products. `--write` replaces the "Search at catalogue
scale" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from mdsection import machine, write_section  # noqa: E402

from deepshelf.storage import Item, open_store  # noqa: E402

LIMIT = 2000
# The SQL search_titles ran before migration 6 (storage/base.py at ed34141): a scan of every title.
OLD_SQL = " WHERE LOWER(i.title) LIKE ? OR LOWER(i.category) LIKE ? LIMIT ?"


def vocabulary(rng: np.random.Generator, n: int) -> list[str]:
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "da", "fi", "go", "ha", "ju", "pe", "zo"]
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(syllables, size=rng.integers(2, 5))))
    return sorted(words)


def catalogue(n: int, seed: int = 0):
    """Batches of synthetic products: Zipf-distributed title words (as real titles are), 200 categories."""
    rng = np.random.default_rng(seed)
    words = np.array(vocabulary(rng, 5000))
    p = 1.0 / np.arange(1, len(words) + 1) ** 0.8
    p /= p.sum()
    batch = 10_000
    for start in range(0, n, batch):
        m = min(batch, n - start)
        title_words = rng.choice(words, size=(m, 4), p=p)
        desc_words = rng.choice(words, size=(m, 10), p=p)
        cats = rng.integers(0, 200, size=m)
        yield [Item(f"p{start + j}", title=" ".join(title_words[j]), description=" ".join(desc_words[j]),
                    category=f"category {cats[j]}", price=float(1 + j % 100)) for j in range(m)]


def queries(store, n_queries: int, n_items: int, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for k in rng.integers(0, n_items, size=n_queries):
        words = store.get_item(f"p{k}").title.split()
        at = int(rng.integers(0, len(words) - 1))
        q = " ".join(words[at:at + int(rng.integers(1, 3))])
        out.append(q[:max(3, len(q) - 2)] if rng.random() < 0.3 else q)  # some typed only partly
    return out


def timed(fn, qs: list[str]) -> tuple[np.ndarray, float]:
    ms, found = [], 0
    for q in qs:
        t = time.perf_counter()
        found += len(fn(q))
        ms.append((time.perf_counter() - t) * 1000)
    return np.array(ms), found / len(qs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="products in the store")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--write", action="store_true", help="write the section of docs/benchmarks.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/search.db", sqlite_synchronous="OFF")
        t0 = time.perf_counter()
        for batch in catalogue(args.n):
            store.upsert_items(batch)  # through the triggers that keep the index, as a shop's upserts do
        build_s = time.perf_counter() - t0
        qs = queries(store, args.queries, args.n)

        def before(q: str):
            needle = f"%{q.lower()}%"
            return store._items_from_rows(store._read(store._item_select() + OLD_SQL, (needle, needle, LIMIT)))

        timed(before, qs[:20]), timed(lambda q: store.search_titles(q, LIMIT), qs[:20])  # warm the page cache
        rows = [("before: substring scan (LIKE)", *timed(before, qs)),
                ("after: FTS5 index, bm25", *timed(lambda q: store.search_titles(q, LIMIT), qs))]
        store.close()
    lines = [f"`benchmarks/search_scale.py --n {args.n}` on {datetime.date.today().isoformat()}. Machine: {machine()} "
             "(shared with other jobs). One SQLite store (synchronous=OFF for the fill), "
             f"{args.n:,} synthetic products filled through `upsert_items` in {build_s:.0f} s (index triggers "
             f"included); {args.queries} queries (one or two adjacent title words, 30% cut to a prefix), one at a "
             f"time, limit {LIMIT}, single thread.", "",
             "| search_titles | p50 ms | p99 ms | products found per query (mean) |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {np.percentile(ms, 50):.2f} | {np.percentile(ms, 99):.2f} | {found:.0f} |"
              for name, ms, found in rows]
    lines += ["", "The two do not find the same products: the scan matches the query as one substring of a title or "
              "category, the index the query's words in order as a phrase (the last one may be a word's beginning) in title, category or description, best first. "
              "Service-level search latency under load (50 req/s target, issue 18) is not measured here."]
    body = "\n".join(lines)
    print(body)
    if args.write:
        write_section("Search at catalogue scale", body)


if __name__ == "__main__":
    main()
