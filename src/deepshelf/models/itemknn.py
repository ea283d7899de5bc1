"""Item-kNN: cosine similarity on item co-occurrence ("customers who bought this also bought")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from deepshelf.data.interactions import Histories, Interactions
from deepshelf.index.exact import topk
from deepshelf.models.base import ModelConfig, Recommender, load_arrays, save_arrays


class ItemKNNConfig(ModelConfig):
    neighbors: int = Field(default=200, gt=0)  # similar items kept per item
    shrink: float = Field(default=0.0, ge=0)  # shrinks similarities of rarely co-occurring pairs
    chunk: int = Field(default=1024, gt=0)  # items per dense block when building the neighbour lists
    # sim(i, j) = co(i, j) / (n_i^alpha * n_j^(1 - alpha)): 0.5 is the cosine; towards 1 it is the share of i's
    # buyers who also bought j (P(j | i)), which favours popular neighbours (the asymmetric cosine of
    # Aiolli, RecSys Challenge 2013); on Online Retail's baskets 0.9 ranked the rest of an order better
    alpha: float = Field(default=0.5, ge=0, le=1)


class ItemKNN(Recommender):
    """score(history) = Σ_{j in history} sim(j, ·), with sim the top-`neighbors` (asymmetric) cosine similarities."""

    name = "itemknn"
    Config = ItemKNNConfig
    reason = "also_bought"

    def _fit(self, train: Interactions, catalog, validation) -> None:
        X = train.to_csr(binary=True)
        XT = X.T.tocsr()
        counts = np.asarray(X.sum(axis=0)).ravel().astype(np.float32)
        alpha = self.config.alpha
        row_norms = np.sqrt(counts) if alpha == 0.5 else np.power(counts, np.float32(alpha))
        col_norms = np.sqrt(counts) if alpha == 0.5 else np.power(counts, np.float32(1 - alpha))
        n, k = self.n_items, min(self.config.neighbors, self.n_items - 1)
        rows, cols, vals = [], [], []
        for start in range(0, n, self.config.chunk):  # blocks of items, each a dense matmul: memory stays bounded
            stop = min(start + self.config.chunk, n)
            co = (XT[start:stop] @ X).toarray().astype(np.float32)  # (chunk, n_items) co-occurrence counts
            sim = co / (row_norms[start:stop, None] * col_norms[None, :] + self.config.shrink + 1e-9)
            sim[np.arange(stop - start), np.arange(start, stop)] = 0.0  # an item is not its own neighbour
            idx, top = topk(sim, k)
            keep = top > 0
            rows.append(np.repeat(np.arange(start, stop), keep.sum(1)))
            cols.append(idx[keep])
            vals.append(top[keep])
        self.similarity = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n), dtype=np.float32
        )

    def score(self, histories: Histories) -> np.ndarray:
        X = histories.to_csr(self.n_items)
        X.data[:] = 1.0
        return (X @ self.similarity).toarray().astype(np.float32)

    def item_similarity(self) -> sp.csr_matrix:
        """The neighbour lists as csr [n_items, n_items]: row i holds item i's top-`neighbors` cosines."""
        return self.similarity

    def _save_weights(self, path: Path) -> None:
        s = self.similarity
        save_arrays(path, {"data": s.data, "indices": s.indices, "indptr": s.indptr})

    def _load_weights(self, path: Path) -> None:
        state = load_arrays(path)
        n = len(state["indptr"]) - 1
        self.similarity = sp.csr_matrix((state["data"], state["indices"], state["indptr"]), shape=(n, n))
