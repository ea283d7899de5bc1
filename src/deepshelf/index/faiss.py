"""Approximate nearest-neighbour search with FAISS (Johnson et al. 2017), inner-product metric.

`exact.py` stays the reference: tests check this index's recall against `exact_search`. An HNSW graph
(Malkov & Yashunin 2016) answers a query in microseconds without a training pass, and `ef_search` trades speed
for recall. Small collections use a flat (exact) FAISS index, where a graph buys nothing.

    index = FaissIndex.build(vectors)                   # float32 [n, d], unit rows for cosine
    idx, scores = index.search(queries, k=10, exclude=rows)  # [B, k] each, -1 / -inf where fewer than k
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from deepshelf.index.exact import topk

log = logging.getLogger(__name__)


class FaissIndex:
    """An inner-product FAISS index over `n` vectors, with per-row exclusion and an allowed-items mask."""

    def __init__(self, index, n: int):
        self.index = index
        self.n = n

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "auto", m: int = 32, ef_construction: int = 80,
              ef_search: int = 128, threads: int | None = None) -> "FaissIndex":
        """Index `vectors` [n, d]. kind: `flat` (exact), `hnsw`, or `auto` (flat below 2,000 items)."""
        import faiss

        if threads:
            faiss.omp_set_num_threads(threads)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, d = vectors.shape
        if kind == "auto":
            kind = "flat" if n < 2000 else "hnsw"
        if kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
            index.hnsw.efSearch = ef_search
        else:
            raise ValueError(f"unknown faiss index kind {kind!r} (flat, hnsw, auto)")
        index.add(vectors)
        return cls(index, n)

    def search(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None,
               allowed: np.ndarray | None = None, vectors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` by inner product: (int64 [B, k], float32 [B, k]), -1 / -inf in unfilled slots.

        exclude: int [B], one index to drop per query (the query item itself; -1 for none).
        allowed: bool [n], items that may be returned (e.g. in stock).
        vectors: the indexed vectors; when given, a row the ANN search could not fill with `k` allowed items
        (many excluded items near the query) is answered exactly instead of coming back short.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, self.n)
        blocked = 0 if allowed is None else int((~allowed).sum())
        fetch = min(self.n, k + 1 + min(blocked, 4 * k))  # over-fetch so filtering still leaves k
        scores, idx = self.index.search(queries, fetch)
        keep = idx >= 0
        if exclude is not None:
            keep &= idx != np.asarray(exclude)[:, None]
        if allowed is not None:
            keep &= allowed[np.where(idx >= 0, idx, 0)]
        # Stable partition: kept hits first in their ranked order.
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
        out_idx = np.take_along_axis(idx, order, 1).astype(np.int64)
        out_scores = np.take_along_axis(scores, order, 1).astype(np.float32)
        filled = np.take_along_axis(keep, order, 1)
        out_idx[~filled] = -1
        out_scores[~filled] = -np.inf
        short = np.flatnonzero(filled.sum(1) < k)
        if len(short) and vectors is not None:
            exact = queries[short] @ np.asarray(vectors, np.float32).T
            if exclude is not None:
                ex = np.asarray(exclude)[short]
                rows = ex >= 0
                exact[np.flatnonzero(rows), ex[rows]] = -np.inf
            if allowed is not None:
                exact[:, ~allowed] = -np.inf
            fi, fs = topk(exact, k)
            fi[~np.isfinite(fs)] = -1
            out_idx[short], out_scores[short] = fi, fs
        return out_idx, out_scores

    def save(self, path: str | Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: str | Path) -> "FaissIndex":
        import faiss

        index = faiss.read_index(str(path))
        return cls(index, index.ntotal)


def recall_against_exact(approx_idx: np.ndarray, exact_idx: np.ndarray) -> float:
    """Share of the exact top-k (ignoring -1 slots) that the approximate top-k also returned."""
    hits = (approx_idx[:, :, None] == exact_idx[:, None, :]) & (exact_idx[:, None, :] >= 0)
    total = (exact_idx >= 0).sum()
    return float(hits.any(1).sum() / max(total, 1))
