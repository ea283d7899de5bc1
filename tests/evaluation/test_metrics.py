"""Metrics on hand-computed cases."""

import math

import numpy as np
import pytest

from deepshelf.data.interactions import Histories
from deepshelf.evaluation import metrics as M


def test_single_target_hand_computed():
    ranked = np.array([[5, 3, 9], [1, 2, 4], [7, 8, 6]])
    targets = Histories.from_lists([[3], [0], [7]])
    hits = M.hit_matrix(ranked, targets)
    assert hits.tolist() == [[False, True, False], [False, False, False], [True, False, False]]
    n = targets.lengths
    assert M.hit_rate(hits, 3).tolist() == [1, 0, 1]
    assert M.hit_rate(hits, 1).tolist() == [0, 0, 1]
    np.testing.assert_allclose(M.ndcg(hits, n, 3), [1 / math.log2(3), 0, 1])
    np.testing.assert_allclose(M.mrr(hits, 3), [0.5, 0, 1])
    np.testing.assert_allclose(M.recall(hits, n, 3), [1, 0, 1])


def test_multi_target_hand_computed():
    # user 0: targets {1, 2, 3}; ranked 1 (hit), 9, 3 (hit) -> DCG = 1 + 1/log2(4); IDCG@3 = 1 + 1/log2(3) + 1/log2(4)
    ranked = np.array([[1, 9, 3]])
    targets = Histories.from_lists([[1, 2, 3]])
    hits = M.hit_matrix(ranked, targets)
    dcg = 1 + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert M.ndcg(hits, targets.lengths, 3)[0] == pytest.approx(dcg / idcg)
    assert M.recall(hits, targets.lengths, 3)[0] == pytest.approx(2 / 3)
    assert M.precision(hits, 3)[0] == pytest.approx(2 / 3)
    # at k=1 the ideal DCG only counts one relevant item
    assert M.ndcg(hits, targets.lengths, 1)[0] == pytest.approx(1.0)


def test_padding_slots_never_hit_and_coverage_popularity():
    ranked = np.array([[0, -1], [0, 1]])
    targets = Histories.from_lists([[0], [2]])
    hits = M.hit_matrix(ranked, targets)
    assert hits.tolist() == [[True, False], [False, False]]
    assert M.coverage(ranked, n_items=4, k=2) == pytest.approx(0.5)
    pop = np.array([3.0, 1.0, 0.0, 0.0])
    # recommended: 0, 0, 1 -> shares 0.75, 0.75, 0.25
    assert M.mean_popularity(ranked, pop, 2) == pytest.approx((0.75 + 0.75 + 0.25) / 3)


def test_against_brute_force_reference():
    """Vectorised metrics equal a plain per-user loop on random data."""
    rng = np.random.default_rng(1)
    U, K, n = 50, 10, 30
    ranked = np.stack([rng.permutation(n)[:K] for _ in range(U)])
    target_lists = [list(rng.choice(n, size=rng.integers(1, 5), replace=False)) for _ in range(U)]
    got = M.per_user_metrics(ranked, Histories.from_lists(target_lists), (5, 10))
    for u in range(U):
        rel = set(target_lists[u])
        for k in (5, 10):
            gains = [1.0 if x in rel else 0.0 for x in ranked[u, :k]]
            dcg = sum(g / math.log2(r + 2) for r, g in enumerate(gains))
            idcg = sum(1 / math.log2(r + 2) for r in range(min(len(rel), k)))
            first = next((r for r, g in enumerate(gains) if g), None)
            assert got[f"ndcg@{k}"][u] == pytest.approx(dcg / idcg)
            assert got[f"hr@{k}"][u] == (1.0 if first is not None else 0.0)
            assert got[f"mrr@{k}"][u] == pytest.approx(0 if first is None else 1 / (first + 1))
            assert got[f"recall@{k}"][u] == pytest.approx(sum(gains) / len(rel))
