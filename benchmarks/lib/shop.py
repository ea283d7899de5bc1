"""The synthetic shop `serve_load.py` measures the service on (`overload.py` and `store_outage.py` take a small one):
a run folder of ALS with clustered synthetic item factors and a SQLite store holding the catalogue and the
shoppers' events, built once per size in a work folder."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("shop")
# the words of the product titles (serve_load.py searches real product names instead: `attach_search`)
WORDS = ["lamp", "chair", "mug", "shirt", "vase", "candle", "table", "scarf", "clock", "bowl", "plate", "jacket",
         "basket", "mirror", "pillow", "rug", "kettle", "glass", "towel", "frame"]


def build(workdir: Path, n_items: int, n_users: int, events_per_user: int, dim: int, seed: int = 0) -> tuple[Path, str]:
    """A run folder (ALS, synthetic factors) and a SQLite store holding the catalogue and the shoppers' events.
    Cached in `workdir` by size."""
    from deepshelf.data.idmap import IdMap
    from deepshelf.models.als import ALS
    from deepshelf.runs.artifacts import write_run
    from deepshelf.runs.config import TrainConfig
    from deepshelf.storage import Event, Item, open_store

    tag = f"{n_items}-{n_users}-{events_per_user}-{dim}"
    run, db = workdir / f"run-{tag}", workdir / f"store-{tag}.db"
    database = f"sqlite:///{db}"
    if run.exists() and (workdir / f"store-{tag}.ok").exists():
        return run, database
    workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_clusters = max(10, n_items // 2000)
    cluster = rng.integers(n_clusters, size=n_items)
    centres = rng.normal(size=(n_clusters, dim)).astype(np.float32)
    factors = (centres[cluster] + 0.5 * rng.normal(size=(n_items, dim))).astype(np.float32) * 0.3
    ids = np.array([f"p{i}" for i in range(n_items)], dtype=object)

    t = time.perf_counter()
    model = ALS(factors=dim)
    model.item_map = IdMap(ids)
    model.item_factors = factors
    popularity = rng.zipf(1.3, size=n_items).astype(np.float64)
    model.item_popularity = (popularity / popularity.max()).astype(np.float32)
    write_run(run, TrainConfig(dataset="synthetic", model="als", params={"factors": dim}), model,
              {"version": f"synthetic-als-{tag}", "model": "als", "dataset": "synthetic", "items": n_items})
    log.info("run written in %.1fs", time.perf_counter() - t)

    if db.exists():
        db.unlink()
    store = open_store(database, sqlite_synchronous="NORMAL")  # bulk load; the server itself runs FULL
    t = time.perf_counter()
    by_cluster = np.argsort(cluster, kind="stable")
    starts = np.searchsorted(cluster[by_cluster], np.arange(n_clusters + 1))
    for lo in range(0, n_items, 20_000):
        hi = min(n_items, lo + 20_000)
        store.upsert_items([Item(item_id=ids[i], title=f"{WORDS[i % len(WORDS)]} {WORDS[(i * 7) % len(WORDS)]} {i}",
                                 category=f"c{cluster[i] % 200}", price=float(5 + (i % 500)),
                                 in_stock=bool(i % 20)) for i in range(lo, hi)])
    log.info("catalogue of %d items stored in %.1fs", n_items, time.perf_counter() - t)
    t = time.perf_counter()
    now = time.time()
    types = ["view"] * 7 + ["cart"] * 2 + ["purchase"]
    batch = []
    for u in range(n_users):
        liked = rng.integers(n_clusters, size=2)
        for _ in range(events_per_user):
            c = liked[rng.integers(2)]
            members = by_cluster[starts[c]:starts[c + 1]]
            item = members[min(int(rng.zipf(1.5)) - 1, len(members) - 1)] if len(members) else rng.integers(n_items)
            batch.append(Event(f"s{u}", ids[item], types[rng.integers(len(types))], now - rng.uniform(0, 3 * 86400)))
        if len(batch) >= 50_000:
            store.add_events(batch)
            batch = []
    store.add_events(batch)
    store.close()
    (workdir / f"store-{tag}.ok").write_text("ok")
    log.info("%d events stored in %.1fs", n_users * events_per_user, time.perf_counter() - t)
    return run, database


def working_copy(database: str) -> str:
    """A fresh copy of the built store for this run: the phases write events (an earlier run's would give the next
    one's shoppers a visit in progress, and a longer history) and impressions."""
    import shutil

    built = Path(database.removeprefix("sqlite:///"))
    work = built.with_name(built.stem + "-run.db")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(built, work)
    return f"sqlite:///{work}"


# ---- a shop searched as shoppers search: real product titles, a semantic search index -------------------------
def fashion_titles() -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """The fashion catalogue's 44,446 product names (with their article type), their type / colour / gender, and
    their text vectors (from the encoder cache: DEEPSHELF_CACHE_DIR)."""
    from benchmarks.search_understanding import catalogue
    from deepshelf.encoders.text import TextEncoder

    _, texts, _, labels = catalogue()
    return texts, labels, TextEncoder().encode(texts)


def attach_search(run: Path, n_items: int) -> None:
    """Give the run a semantic search index (RUN/content) over its `n_items` products: product i has the name,
    labels and text vector of fashion product i mod 44,446 (real titles, each about n / 44,446 times at 1M), so
    the served search is the understood one (spelling, type / colour / gender filters, text vectors, BM25). The
    similar-products index holds one product: this shop is for timing search, not similar items. Cached."""
    from deepshelf.content.search import SearchIndex
    from deepshelf.content.similar import SimilarIndex

    folder = run / "content"
    if (folder / "search.ok").exists():
        return
    t = time.perf_counter()
    texts, labels, vectors = fashion_titles()
    take = np.arange(n_items) % len(texts)
    ids = np.array([f"p{i}" for i in range(n_items)])
    index = SearchIndex(ids, [texts[j] for j in take], vectors[take], np.zeros((n_items, 1), np.float32),
                        np.zeros(n_items, bool), None, attributes={a: v[take] for a, v in labels.items()})
    index.save(folder)
    SimilarIndex(ids[:1], {"text": vectors[:1]}, {"text": np.ones(1, bool)}).save(folder)
    (folder / "search.ok").write_text("ok")
    log.info("search index over %d products (real titles) in %.1fs", n_items, time.perf_counter() - t)


def search_run(run: Path, n_items: int) -> Path:
    """A copy of the shop's run with a semantic search index over real product names (`attach_search`), so
    the served search is the understood one; built once per size."""
    import shutil

    folder = run.with_name(run.name + "-search")
    if not (folder / "content" / "search.ok").exists():
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(run, folder, ignore=shutil.ignore_patterns("content"))
        attach_search(folder, n_items)
    return folder


def search_queries(n: int, seed: int = 0, typos: float = 0.2, no_match: float = 0.1) -> list[str]:
    """Shoppers' queries for a shop with the fashion catalogue's names: 1 to 3 words drawn from one real product
    name (lower case, as typed), a misspelt word (keyboard neighbour, dropped, doubled or swapped letter) in
    `typos` of them, and in `no_match` of them words no product has."""
    import random
    import re

    from benchmarks.search_understanding import catalogue, typo

    rng = random.Random(seed)
    _, texts, names, _ = catalogue()
    out = []
    for _ in range(n):
        if rng.random() < no_match:
            out.append(" ".join("".join(rng.choice("bcdfghjklmnpqrstvwxz") + rng.choice("aeiou")
                                        for _ in range(rng.randint(2, 4))) for _ in range(rng.randint(1, 2))))
            continue
        words = re.findall(r"[a-z]+", rng.choice(names).lower())
        if not words:
            continue
        start = rng.randrange(len(words))
        picked = words[start:start + rng.randint(1, 3)]
        if rng.random() < typos:
            long = [i for i, w in enumerate(picked) if len(w) >= 4]
            if long:
                i = rng.choice(long)
                picked[i] = typo(picked[i], rng)
        out.append(" ".join(picked))
    return out
