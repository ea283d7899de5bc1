"""Exact top-k over a dense score matrix: the reference every faster retrieval path is checked against."""

from __future__ import annotations

import numpy as np


def topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the `k` largest entries of each row, best first.

    scores: float [B, n]. Returns (int64 [B, k'], float32 [B, k']) with k' = min(k, n). Ties break towards the
    lower index, so results are deterministic.
    """
    B, n = scores.shape
    k = min(k, n)
    if k == 0:
        return np.zeros((B, 0), np.int64), np.zeros((B, 0), np.float32)
    if k < n:
        # argpartition keeps an arbitrary subset of the items tied at the k-th score, so the top 10 need not be the
        # first 10 of the top 20; keep every item above the k-th score and the lowest-indexed of those tied with it.
        kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]  # [B, 1] the k-th largest score
        above = scores > kth
        tied = scores == kth
        keep = above | (tied & (np.cumsum(tied, axis=1) <= k - above.sum(1, keepdims=True)))
        if (keep.sum(1) == k).all():
            part = np.nonzero(keep)[1].reshape(B, k)
        else:  # NaN scores compare false both ways: no tie rule for those rows' order
            part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n), (B, n)).copy()
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return idx, np.take_along_axis(part_scores, order, axis=1).astype(np.float32)


def exact_search(queries: np.ndarray, vectors: np.ndarray, k: int, exclude: np.ndarray | None = None):
    """Inner-product top-k of `queries` [B, d] against `vectors` [n, d]; `exclude` [B] drops one index per row."""
    scores = queries.astype(np.float32) @ vectors.astype(np.float32).T
    if exclude is not None:
        scores[np.arange(len(scores)), exclude] = -np.inf
    return topk(scores, k)
