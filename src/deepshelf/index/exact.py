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
        # argpartition picks a top k, but among items tied at the k-th score an arbitrary subset; a row where
        # more items than k reach the k-th score takes the lowest-indexed of the tied ones instead. Only those rows
        # pay for the tie rule (a cumulative count over the whole row): with real-valued scores they are few, and
        # the rule over every row was about half of a full-ranking validation's top-k time
        # (benchmarks/recbole_compare.py, `validation_costs`).
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(scores, part, axis=1).min(1, keepdims=True)  # [B, 1]; NaN where NaN was picked
        tied_rows = np.flatnonzero(np.count_nonzero(scores >= kth, axis=1) > k)
        if len(tied_rows):
            part[tied_rows] = _lowest_index_ties(scores[tied_rows], kth[tied_rows], k)
        # a row with fewer than k non-NaN scores keeps argpartition's choice: NaN compares false both ways, so
        # no tie rule orders it
    else:
        part = np.broadcast_to(np.arange(n), (B, n)).copy()
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return idx, np.take_along_axis(part_scores, order, axis=1).astype(np.float32)


def topk_allowed(scores: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`topk` among the entries `allowed` ([n] or [B, n] bool; None: all) lets through; a slot no allowed entry
    fills has index -1 and score -inf. Writes -inf into `scores` where not allowed."""
    if allowed is not None:
        scores[~np.broadcast_to(np.asarray(allowed, bool), scores.shape)] = -np.inf
    idx, top = topk(scores, k)
    idx[~np.isfinite(top)] = -1
    return idx, top


def _lowest_index_ties(scores: np.ndarray, kth: np.ndarray, k: int) -> np.ndarray:
    """int [B, k] indices: every item above the row's k-th score `kth` [B, 1], then the lowest-indexed of those
    tied with it until there are k."""
    above = scores > kth
    tied = scores == kth
    keep = above | (tied & (np.cumsum(tied, axis=1) <= k - above.sum(1, keepdims=True)))
    return np.nonzero(keep)[1].reshape(len(scores), k)


def exact_search(queries: np.ndarray, vectors: np.ndarray, k: int, exclude: np.ndarray | None = None):
    """Inner-product top-k of `queries` [B, d] against `vectors` [n, d]; `exclude` [B] drops one index per row."""
    scores = queries.astype(np.float32) @ vectors.astype(np.float32).T
    if exclude is not None:
        scores[np.arange(len(scores)), exclude] = -np.inf
    return topk(scores, k)
