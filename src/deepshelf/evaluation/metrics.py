"""Vectorised ranking metrics over `[users, k]` arrays of recommended item indices.

All functions take `hits`: bool [U, K], true where the item at that rank is relevant, and `n_relevant`: int [U].
"""

from __future__ import annotations

import numpy as np

from deepshelf.data.interactions import Histories


def hit_matrix(ranked: np.ndarray, targets: Histories) -> np.ndarray:
    """bool [U, K]: is `ranked[u, r]` one of user u's targets? Encoded as (row, item) pairs, no Python loop."""
    U, K = ranked.shape
    n_items = int(max(ranked.max(initial=0), targets.items.max(initial=0))) + 1
    target_codes = np.repeat(np.arange(U, dtype=np.int64), targets.lengths) * n_items + targets.items
    ranked_codes = np.arange(U, dtype=np.int64)[:, None] * n_items + ranked
    return np.isin(ranked_codes, target_codes) & (ranked >= 0)


def hit_rate(hits: np.ndarray, k: int) -> np.ndarray:
    """1 if any of the top k is relevant (HR@k; equals Recall@k with one target)."""
    return hits[:, :k].any(axis=1).astype(np.float64)


def recall(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    return hits[:, :k].sum(axis=1) / np.maximum(n_relevant, 1)


def precision(hits: np.ndarray, k: int) -> np.ndarray:
    return hits[:, :k].sum(axis=1) / k


def ndcg(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """DCG of the top k (gain 1 per relevant item, discount log2(rank + 1)) over the ideal DCG."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits[:, :k] * discounts[: hits[:, :k].shape[1]]).sum(axis=1)
    ideal_cum = np.concatenate([[0.0], np.cumsum(discounts)])
    return dcg / ideal_cum[np.clip(n_relevant, 1, k)]


def mrr(hits: np.ndarray, k: int) -> np.ndarray:
    """Reciprocal rank of the first relevant item within the top k (0 if none)."""
    top = hits[:, :k]
    first = top.argmax(axis=1)
    return np.where(top.any(axis=1), 1.0 / (first + 1), 0.0)


def coverage(ranked: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalogue that appears in anyone's top k."""
    top = ranked[:, :k]
    return float(len(np.unique(top[top >= 0])) / n_items)


def mean_popularity(ranked: np.ndarray, item_popularity: np.ndarray, k: int) -> float:
    """Mean training popularity (share of training events) of the recommended items."""
    top = ranked[:, :k]
    share = item_popularity / max(item_popularity.sum(), 1.0)
    return float(share[top[top >= 0]].mean()) if (top >= 0).any() else 0.0


def per_user_metrics(ranked: np.ndarray, targets: Histories, ks: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Every per-user metric at every k: {"ndcg@10": float [U], ...}."""
    hits = hit_matrix(ranked, targets)
    n_rel = targets.lengths
    out = {}
    for k in ks:
        out[f"hr@{k}"] = hit_rate(hits, k)
        out[f"recall@{k}"] = recall(hits, n_rel, k)
        out[f"ndcg@{k}"] = ndcg(hits, n_rel, k)
        out[f"mrr@{k}"] = mrr(hits, k)
        out[f"precision@{k}"] = precision(hits, k)
    return out
