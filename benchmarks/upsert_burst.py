"""Catalogue upserts in a burst against upserts one at a time: the content worker's passes and CPU over a
searchable catalogue of synthetic products (each pass rebuilds the search's word index and query understanding over
the whole catalogue, so its cost grows with the catalogue, not with the upsert).

    .venv/bin/python -m benchmarks.upsert_burst --items 100000 --upserts 5

Both sides run the same code in one process: "one at a time" waits for each upsert's vectors before sending the
next (upserts further apart than a pass); "burst" sends them 50 ms apart, as a shop's backend does after an import,
so those arriving while a pass runs wait and are added together (`engine/content.py`). Text vectors are random unit
vectors (no encoder model is loaded: the pass's own cost is what is measured).
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.lib.cli import parser
from benchmarks.lib.mdsection import machine

WORDS = ("red blue black green shirt dress lamp chair cotton linen men women kids shoe bag wallet watch jacket jeans "
         "sofa").split()


class RandomEncoder:
    """Unit vectors in place of a text encoder's."""

    def __init__(self, dim: int, seed: int = 0):
        self.dim, self.rng = dim, np.random.default_rng(seed)

    def encode(self, texts) -> np.ndarray:
        v = self.rng.standard_normal((len(texts), self.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def features(n: int, dim: int = 32):
    from deepshelf.content.search import SearchIndex
    from deepshelf.content.similar import SimilarIndex
    from deepshelf.engine.content import ContentFeatures

    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, 5)) + f" model {i}" for i in range(n)]
    ids = np.array([f"p{i}" for i in range(n)])
    vectors = RandomEncoder(dim).encode(texts)
    search = SearchIndex(ids, texts, vectors, np.zeros((n, 1), np.float32), np.zeros(n, bool), None,
                         encoder=RandomEncoder(dim, 1))
    content = ContentFeatures(SimilarIndex(ids, {"text": vectors}, {"text": np.ones(n, bool)}), search)
    content._encoder = RandomEncoder(dim, 2)  # what upserted products' texts are encoded with
    return content


def upserts(content, count: int, burst: bool, tag: str) -> tuple[int, float, float]:
    """(passes, CPU seconds of the process, wall seconds) until every upsert's vectors are in."""
    from deepshelf.storage import Item

    cpu, wall, futures = time.process_time(), time.perf_counter(), []
    for b in range(count):
        futures.append(content.add_items([Item(f"{tag}{b}", title=f"new red lamp {b}")]))
        if burst:
            time.sleep(0.05)
        else:
            futures[-1].result()
    for f in futures:
        f.result()
    found = set(content.search_index.item_ids.tolist())
    assert all(f"{tag}{b}" in found for b in range(count)), "an upserted product is not searchable"
    return len({id(f) for f in futures}), time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--upserts", type=int, default=5)
    args = ap.parse_args()
    content = features(args.items)
    try:
        rows = [("one at a time", *upserts(content, args.upserts, False, "single")),
                ("burst, 50 ms apart", *upserts(content, args.upserts, True, "burst"))]
    finally:
        content.close()
    print(f"Command: `python -m benchmarks.upsert_burst --items {args.items} --upserts {args.upserts}`  ")
    print(f"Machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| upserts | passes | CPU s | wall s |\n|---|---:|---:|---:|")
    for name, passes, cpu, wall in rows:
        print(f"| {args.upserts} {name} | {passes} | {cpu:.1f} | {wall:.1f} |")
    print(f"\nBurst: {rows[1][2] / rows[0][2]:.2f}x the CPU of the same upserts one at a time.")


if __name__ == "__main__":
    main()
