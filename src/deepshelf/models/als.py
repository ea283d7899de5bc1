"""ALS matrix factorisation for implicit feedback (Hu, Koren & Volinsky, ICDM 2008), trained by `implicit`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from deepshelf.data.interactions import Histories, Interactions
from deepshelf.errors import DeepshelfError
from deepshelf.models.base import ModelConfig, Recommender, load_arrays, save_arrays


class ALSConfig(ModelConfig):
    factors: int = Field(default=64, gt=0)
    regularization: float = Field(default=0.05, ge=0)
    alpha: float = Field(default=10.0, gt=0)  # confidence of an observed event = alpha * weight
    iterations: int = Field(default=15, gt=0)
    use_weights: bool = False  # confidence from event weights (purchase > cart > view) instead of 1
    threads: int = Field(default=0, ge=0)  # 0: all cores


class ALS(Recommender):
    """Item factors are learned by `implicit`; a shopper's factor is solved from their history at scoring time.

    The fold-in solves (YᵀY + λI + Σᵢ (cᵢ-1) yᵢyᵢᵀ) x = Σᵢ cᵢ yᵢ for the whole batch at once — the same equation
    `implicit` solves for a training user — so any history, including one from a new shopper, is scored.
    YᵀY + λI depends on the item factors alone: it is computed once, when they are learned or loaded.
    Scores are a dot product (`VectorScorer`): query_vectors(h) @ item_vectors().T == score(h).
    """

    name = "als"
    Config = ALSConfig
    reason = "personal"
    fold_in_group = 64  # histories solved together in one batched call

    def _fit(self, train: Interactions, catalog, validation) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        cfg = self.config
        model = AlternatingLeastSquares(factors=cfg.factors, regularization=cfg.regularization, alpha=cfg.alpha,
                                        iterations=cfg.iterations, random_state=cfg.seed,
                                        num_threads=cfg.threads, calculate_training_loss=False)
        user_items = train.to_csr(binary=not cfg.use_weights)
        model.fit(user_items, show_progress=False)
        item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)  # (n_items, f)
        if not np.all(np.isfinite(item_factors)):
            raise DeepshelfError("als: training diverged (non-finite item factors); raise 'regularization'")
        self._use_factors(item_factors)

    def _use_factors(self, item_factors: np.ndarray) -> None:
        self.item_factors = item_factors
        Y = item_factors.astype(np.float64)
        self._gram = Y.T @ Y + self.config.regularization * np.eye(Y.shape[1])  # (f, f) YᵀY + λI

    def user_factors(self, histories: Histories, weights: np.ndarray | None = None) -> np.ndarray:
        """Fold-in factors [B, f] for a batch of histories (repeated items add their confidence)."""
        cfg = self.config
        Y = self.item_factors
        B, f = len(histories), Y.shape[1]
        if B == 1:
            return self._fold_in_one(histories, weights)
        if weights is None and bool((np.diff(histories.indptr) == 1).all()):
            return self._fold_in_singles(np.asarray(histories.items, np.int64))
        indptr, indices, data = self._confidence(histories, weights)
        out = np.empty((B, f), np.float32)
        # Rows sorted by length and padded per group of similar length, so padding costs little compute;
        # each group is one batched matmul + solve.
        lengths = np.diff(indptr)
        order = np.argsort(lengths, kind="stable")
        for start in range(0, B, self.fold_in_group):
            group = order[start : start + self.fold_in_group]
            glen = lengths[group]
            L = max(int(glen.max(initial=0)), 1)
            rows = np.repeat(np.arange(len(group)), glen)
            cols = np.arange(int(glen.sum())) - np.repeat(np.cumsum(glen) - glen, glen)
            at = np.repeat(indptr[group], glen) + cols  # the group's entries, row by row
            items = np.zeros((len(group), L), np.int64)
            c = np.zeros((len(group), L))
            items[rows, cols], c[rows, cols] = indices[at], data[at]
            Yp = Y[items].astype(np.float64)  # (G, L, f); padded slots have c = 0 and add nothing
            A = self._gram[None] + np.matmul(Yp.transpose(0, 2, 1) * (c - (c != 0))[:, None, :], Yp)  # (G, f, f)
            b = np.matmul(c[:, None, :], Yp)[:, 0]  # (G, f)
            out[group] = np.linalg.solve(A, b[..., None])[..., 0]
        return out

    def _fold_in_one(self, histories: Histories, weights: np.ndarray | None) -> np.ndarray:
        """`user_factors` of a one-row batch (what a served request folds in), the same equation and the same
        float steps as the batched path without its grouping and padding: fewer numpy calls, which are most of a
        one-row solve's cost (benchmarks/serve_wrk.py, the Service section's CPU per request)."""
        items = self._items(histories.items)
        if self.config.use_weights:  # repeats add up
            distinct, inverse = np.unique(items, return_inverse=True)
            summed = np.zeros(len(distinct), np.float32)
            np.add.at(summed, inverse, np.ones(len(items), np.float32) if weights is None
                      else np.asarray(weights, np.float32))
        else:  # an item counts once
            distinct = np.unique(items)
            summed = np.ones(len(distinct), np.float32)
        c = (summed * np.float32(self.config.alpha)).astype(np.float64)
        Yp = self.item_factors[distinct].astype(np.float64)  # (L, f)
        A = self._gram + (Yp.T * (c - (c != 0))) @ Yp
        return np.linalg.solve(A, c @ Yp)[None].astype(np.float32)

    def _fold_in_singles(self, items: np.ndarray) -> np.ndarray:
        """`user_factors` of histories of one item each (what explanations ask: `explain.RelationRows`): with one
        item y of confidence c the system is (G + (c-1) y yᵀ) x = c y, G = YᵀY + λI, whose solution by
        Sherman-Morrison is x = c G⁻¹y / (1 + (c-1) yᵀG⁻¹y): one product with G⁻¹ (kept beside G) instead of a
        solve per row."""
        self._items(items)
        c = float(np.float32(1.0) * np.float32(self.config.alpha))  # as the batched path's float32 confidences
        Y = self.item_factors[items].astype(np.float64)  # (B, f)
        z = Y @ self._gram_inverse()  # G is symmetric: rows of G⁻¹y
        s = np.einsum("bf,bf->b", z, Y)
        return (c * z / (1.0 + (c - 1.0) * s)[:, None]).astype(np.float32)

    def _items(self, items) -> np.ndarray:
        """History item indices as int64, each one of this model's items (else a DeepshelfError)."""
        items = np.asarray(items, np.int64)
        if len(items) and (items.min() < 0 or items.max() >= self.n_items):
            raise DeepshelfError(f"als: history item index out of range [0, {self.n_items})")
        return items

    def _gram_inverse(self) -> np.ndarray:
        """G⁻¹ of the kept YᵀY + λI, computed once per G."""
        held = getattr(self, "_gram_inv", None)
        if held is None or held[0] is not self._gram:
            held = self._gram_inv = (self._gram, np.linalg.inv(self._gram))
        return held[1]

    def _confidence(self, histories: Histories, weights: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """The confidences alpha * w of each row's distinct items, as csr parts (indptr, indices, float32 data),
        items ascending within a row: `histories.to_csr(n_items, weights)` (repeats add up; all 1 without
        `use_weights`) times alpha, built in numpy. scipy's constructor, index checks and row slicing cost more
        than the solve itself on the one-row batches a served request folds in (benchmarks/serve_load.py)."""
        n = self.n_items
        items = self._items(histories.items)
        row = np.repeat(np.arange(len(histories), dtype=np.int64), np.diff(histories.indptr))
        if self.config.use_weights:  # repeats add up
            keys, inverse = np.unique(row * n + items, return_inverse=True)
            summed = np.zeros(len(keys), np.float32)
            np.add.at(summed, inverse, np.ones(len(items), np.float32) if weights is None
                      else np.asarray(weights, np.float32))
        else:  # an item counts once
            keys = np.unique(row * n + items)
            summed = np.ones(len(keys), np.float32)
        indptr = np.zeros(len(histories) + 1, np.int64)
        np.cumsum(np.bincount(keys // n, minlength=len(histories)), out=indptr[1:])
        return indptr, keys % n, summed * np.float32(self.config.alpha)

    def score(self, histories: Histories) -> np.ndarray:
        return self.query_vectors(histories) @ self.item_factors.T

    def query_vectors(self, histories: Histories) -> np.ndarray:
        return self.user_factors(histories)  # (B, f)

    def item_vectors(self) -> np.ndarray:
        return self.item_factors  # (n_items, f)

    def _save_weights(self, path: Path) -> None:
        save_arrays(path, {"item_factors": self.item_factors})

    def _load_weights(self, path: Path) -> None:
        self._use_factors(np.ascontiguousarray(load_arrays(path)["item_factors"], dtype=np.float32))
