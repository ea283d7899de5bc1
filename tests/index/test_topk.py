"""`topk`, the exact reference every retrieval path is checked against: against a full sort, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from deepshelf.index.exact import topk


def full_sort(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every row sorted whole, best score first and the lower index first among equal scores."""
    n = scores.shape[1]
    order = np.stack([np.lexsort((np.arange(n), -row)) for row in scores])[:, :k]
    return order, np.take_along_axis(scores, order, 1)


@pytest.mark.parametrize("k", [1, 3, 10, 39])
def test_topk_matches_a_full_sort_with_ties_and_excluded_items(k):
    rng = np.random.default_rng(k)
    # few distinct values, so most rows have more items tied at their k-th score than k leaves room for
    scores = rng.integers(0, 6, (200, 40)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.3] = -np.inf  # excluded (seen) items
    scores[:20] = rng.standard_normal((20, 40))  # rows without ties: the fast path alone
    scores[20, 5:] = -np.inf  # fewer allowed items than k: -inf ties fill the row's list
    idx, top = topk(scores, k)
    want_idx, want_top = full_sort(scores, k)
    assert np.array_equal(idx, want_idx)
    assert np.array_equal(top, want_top)


def test_topk_hand_computed_ties_take_the_lowest_index():
    scores = np.array([[1.0, 3.0, 2.0, 3.0, 2.0, 2.0],
                       [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]], np.float32)
    idx, top = topk(scores, 3)
    assert idx.tolist() == [[1, 3, 2], [0, 1, 2]]  # 3, 3, then the first of the three 2s; all equal: 0, 1, 2
    assert top.tolist() == [[3.0, 3.0, 2.0], [0.0, 0.0, 0.0]]


def test_topk_of_k_at_least_the_row_length_sorts_the_row():
    scores = np.array([[0.5, 2.0, 0.5]], np.float32)
    idx, top = topk(scores, 5)
    assert idx.tolist() == [[1, 0, 2]] and top.tolist() == [[2.0, 0.5, 0.5]]
