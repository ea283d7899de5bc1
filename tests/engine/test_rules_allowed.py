"""`rules.allowed`'s two ways of dropping excluded items (pairwise for a page of candidates, a per-product flag
for many) give the same mask as a plain `np.isin` reference, out-of-range candidates and exclusions included."""

from __future__ import annotations

import numpy as np
import pytest

from deepshelf.engine import rules as rules_module
from deepshelf.engine.catalog_view import Columns, Snapshot
from deepshelf.engine.rules import Rules, allowed


def snapshot(n: int, rng: np.random.Generator) -> Snapshot:
    cols = Columns(ids=np.array([f"p{i}" for i in range(n)], dtype=object),
                   category=rng.integers(-1, 3, n).astype(np.int32), price=rng.uniform(1, 50, n),
                   in_stock=rng.random(n) < 0.8, in_catalog=np.ones(n, bool), added_at=np.zeros(n))
    return Snapshot(cols, n, {f"p{i}": i for i in range(n)}, ["a", "b", "c"], {"a": 0, "b": 1, "c": 2}, 3)


def reference(cat: Snapshot, idx: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    n = len(cat)
    ok = (idx >= 0) & (idx < n)
    ok[ok] &= cat.cols.in_stock[idx[ok]]
    return ok & ~np.isin(idx, excluded)


@pytest.mark.parametrize("limit", [0, 10**9])  # 0: always the per-product flags; huge: always pairwise
def test_both_ways_of_excluding_match_isin(monkeypatch, limit):
    monkeypatch.setattr(rules_module, "EXCLUDE_BROADCAST_MAX", limit)
    rng = np.random.default_rng(7)
    for trial in range(200):
        n = int(rng.integers(1, 400))
        cat = snapshot(n, rng)
        idx = rng.integers(-3, n + 3, int(rng.integers(0, 2 * n)))
        excluded = np.unique(rng.integers(-2, n + 2, int(rng.integers(1, 60))))
        got = allowed(cat, idx, Rules(), excluded)
        assert np.array_equal(got, reference(cat, idx, excluded)), trial

