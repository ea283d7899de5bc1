"""Full-ranking evaluation through the same `recommend()` the server calls."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from deepshelf.data.splits import EvalSet
from deepshelf.evaluation.metrics import coverage, mean_popularity, per_user_metrics
from deepshelf.models.base import Recommender, Validation


@dataclass
class EvalResult:
    metrics: dict[str, float]  # averaged over users (+ coverage, popularity)
    per_user: dict[str, np.ndarray]  # metric -> [U]
    ranked: np.ndarray  # int64 [U, max k] recommended item indices
    scores: np.ndarray  # float32 [U, max k]
    history_length: np.ndarray  # int [U]
    slices: dict[str, dict[str, float]]  # slice name -> averaged metrics
    seconds: float
    exclude_seen: bool = True  # whether the history's items were kept out of the ranking (discovery) or not


def recommend_all(model: Recommender, evalset: EvalSet, k: int, batch_size: int = 512,
                  on_batch: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k for every evaluated user, batch by batch: int64 [U, k], float32 [U, k].

    Seen items are excluded when `evalset.exclude_seen` (discovery) and allowed otherwise (buy again).
    """
    U = len(evalset)
    ranked = np.full((U, k), -1, np.int64)
    scores = np.full((U, k), -np.inf, np.float32)
    for start in range(0, U, batch_size):
        rows = np.arange(start, min(start + batch_size, U))
        idx, top = model.recommend(evalset.inputs.select(rows), k=k, exclude_seen=evalset.exclude_seen)
        ranked[rows, : idx.shape[1]], scores[rows, : idx.shape[1]] = idx, top
        if on_batch is not None:
            on_batch(len(rows))
    return ranked, scores


def with_evidence(ranked: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """bool [U, k]: the slots of `recommend_all`'s lists the model has evidence for, a prefix of each row.

    A score of exactly 0 means nothing in the shopper's history (or, for popularity, in the training data)
    speaks for the item: item-kNN and EASE give 0 to every item unrelated to the history, and top-k then fills
    the list with such ties in arbitrary order. A row's list ends at its first such slot (or empty slot, -1):
    what follows is ranked below "no evidence" (an EASE score below 0). Metrics still rank the full list;
    exports write only these slots.
    """
    return np.cumprod((ranked >= 0) & np.isfinite(scores) & (scores != 0), axis=1).astype(bool)


def evaluate(model: Recommender, evalset: EvalSet, ks: tuple[int, ...] = (10, 20),
             item_popularity: np.ndarray | None = None, batch_size: int = 512,
             on_batch: Callable[[int], None] | None = None) -> EvalResult:
    """HR, Recall, NDCG, MRR, precision at each k over all evaluated users, ranking over all items.

    Slices: each user slice averages the per-user metrics over its users; each target slice (e.g. "new_items")
    keeps only those targets and averages the metrics over the users with at least one of them (HR@k: one of
    those targets in the top k; recall@k: the share of them found). Every slice counts its "users" and "targets".
    """
    start = time.perf_counter()
    kmax = max(ks)
    ranked, scores = recommend_all(model, evalset, kmax, batch_size, on_batch)
    per_user = per_user_metrics(ranked, evalset.targets, ks)
    metrics = {name: float(v.mean()) if len(v) else 0.0 for name, v in per_user.items()}
    for k in ks:
        metrics[f"coverage@{k}"] = coverage(ranked, model.n_items, k)
        if item_popularity is not None:
            metrics[f"popularity@{k}"] = mean_popularity(ranked, item_popularity, k)
    metrics["users"] = float(len(evalset))
    slices = {name: {m: float(v[mask].mean()) for m, v in per_user.items()}
              | {"users": float(mask.sum()), "targets": float(evalset.targets.lengths[mask].sum())}
              for name, mask in evalset.slices.items() if mask.any()}
    for name, keep in evalset.target_slices.items():
        rows, restricted = evalset.restrict_targets(keep)
        if len(rows):
            sliced = per_user_metrics(ranked[rows], restricted.targets, ks)
            slices[name] = ({m: float(v.mean()) for m, v in sliced.items()}
                            | {"users": float(len(rows)), "targets": float(keep.sum())})
    return EvalResult(metrics, per_user, ranked, scores, evalset.inputs.lengths, slices,
                      time.perf_counter() - start, evalset.exclude_seen)


def validation(evalset: EvalSet, k: int = 10) -> Validation:
    """What a model validates on while it fits: NDCG@`k` on `evalset`, through the same `evaluate()`."""
    return Validation(evalset, lambda model, cases: evaluate(model, cases, (k,)).metrics[f"ndcg@{k}"])
