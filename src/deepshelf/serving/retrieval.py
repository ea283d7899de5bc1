"""Top-k retrieval over item vectors: exact matmul for small catalogues, a FAISS IVF index above a threshold.

The exact path (`deepshelf.index.exact`) is the reference; tests check the FAISS path's recall@10 against it.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from deepshelf.index.exact import topk

log = logging.getLogger(__name__)


class VectorIndex:
    """Inner-product search over `vectors` [n, d]: exact when n <= `threshold`, else FAISS IndexIVFFlat."""

    def __init__(self, vectors: np.ndarray, threshold: int = 50_000, nprobe: int = 24, seed: int = 0):
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, d = self.vectors.shape
        self.exact = n <= threshold
        self.faiss_index = None
        if not self.exact:
            import faiss

            # ~2·sqrt(n) lists: a probe scans ~n/nlist vectors. k-means on ~40 points per list (faiss' minimum
            # without a warning) for 10 iterations keeps the build to seconds for a million items.
            nlist = max(16, int(2 * math.sqrt(n)))
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.niter = 10
            rng = np.random.default_rng(seed)
            sample = self.vectors[rng.choice(n, size=min(n, 40 * nlist), replace=False)]
            index.train(sample)
            index.add(self.vectors)
            index.nprobe = min(nprobe, nlist)
            self.faiss_index = index
            # Requests search one query each: an OpenMP team costs more than it saves there, and its spinning
            # threads take CPU from the requests beside it (measured: 1.48 -> 1.36 ms per recommendation).
            faiss.omp_set_num_threads(1)
            log.info("built FAISS IVF index: %d items, %d lists, nprobe %d", n, nlist, index.nprobe)

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(int64 [B, k], float32 [B, k]) best first; -1 / -inf pad where fewer than k items exist."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(k, len(self))
        if self.exact:
            return topk(queries @ self.vectors.T, k)
        scores, idx = self.faiss_index.search(queries, k)
        scores[idx < 0] = -np.inf
        return idx.astype(np.int64), scores.astype(np.float32)


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of each exact top-k row found in the approximate row."""
    hits = [len(set(a[a >= 0]) & set(e[e >= 0])) / max(1, (e >= 0).sum()) for a, e in zip(approx, exact)]
    return float(np.mean(hits))


class VectorModel:
    """How the service gets query and item vectors from a model that scores by a dot product.

    `query(histories) -> [B, d]`, `items -> [n, d]`; `None` from `vector_model()` when the model has no such form
    (item-kNN, EASE, popularity are scored densely or through their sparse neighbour lists instead).
    """

    def __init__(self, query, items: np.ndarray):
        self.query = query
        self.items = items


def vector_model(model) -> VectorModel | None:
    if model is None:
        return None
    # A model may expose the pair directly (the sequential models do).
    if callable(getattr(model, "query_vectors", None)) and callable(getattr(model, "item_vectors", None)):
        return VectorModel(model.query_vectors, np.asarray(model.item_vectors(), dtype=np.float32))
    if getattr(model, "name", None) == "als" and getattr(model, "item_factors", None) is not None:
        return VectorModel(ALSFoldIn(model), np.asarray(model.item_factors, dtype=np.float32))
    return None


class ALSFoldIn:
    """ALS shopper factors for a few histories at request time, with YᵀY + λI computed once at load.

    Solves the same equation as `ALS.user_factors` (the reference, compared in tests), which recomputes YᵀY over
    all items on every call: fine for batch evaluation, ~100 ms per request on a million-item catalogue.
    """

    def __init__(self, model):
        cfg = model.config
        self.alpha, self.binary = cfg.alpha, not cfg.use_weights
        self.n_items = len(model.item_factors)
        self.Y = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        Y64 = self.Y.astype(np.float64)
        self.base = Y64.T @ Y64 + cfg.regularization * np.eye(Y64.shape[1])

    def __call__(self, histories) -> np.ndarray:
        out = np.empty((len(histories), self.Y.shape[1]), np.float32)
        for b in range(len(histories)):  # serving batches are a handful of rows; each solve is f x f
            items, counts = np.unique(histories[b], return_counts=True)
            if not len(items):
                out[b] = 0.0
                continue
            c = self.alpha * (np.ones(len(items)) if self.binary else counts.astype(np.float64))
            Yi = self.Y[items].astype(np.float64)  # (L, f)
            A = self.base + (Yi.T * (c - 1.0)) @ Yi
            out[b] = np.linalg.solve(A, Yi.T @ c)
        return out
