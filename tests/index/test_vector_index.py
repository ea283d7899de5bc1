"""The FAISS index against the exact reference (index/exact.py)."""

from __future__ import annotations

import numpy as np

from deepshelf.index.exact import exact_search
from deepshelf.index.faiss import FaissIndex, recall_against_exact


def clustered(n=3000, d=32, clusters=30, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    x = centres[rng.integers(0, clusters, n)] + 0.5 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_hnsw_recall_against_exact():
    x = clustered()
    rows = np.arange(0, len(x), 7)
    index = FaissIndex.build(x, kind="hnsw")
    approx, approx_scores = index.search(x[rows], 10, exclude=rows)
    exact, exact_scores = exact_search(x[rows], x, 10, exclude=rows)
    assert recall_against_exact(approx, exact) >= 0.95
    assert not (approx == rows[:, None]).any()  # the query item never comes back
    assert np.all(np.diff(approx_scores, axis=1) <= 1e-6)  # best first


def test_flat_is_exact_and_respects_allowed_mask():
    x = clustered(n=500)
    rows = np.arange(50)
    allowed = np.ones(len(x), bool)
    allowed[::3] = False
    index = FaissIndex.build(x, kind="flat")
    idx, scores = index.search(x[rows], 5, exclude=rows, allowed=allowed, vectors=x)
    ref = x[rows] @ x.T
    ref[:, ~allowed] = -np.inf
    ref[rows, rows] = -np.inf
    want = np.argsort(-ref, axis=1, kind="stable")[:, :5]
    np.testing.assert_allclose(scores, np.take_along_axis(ref, want, 1), atol=1e-5)
    assert allowed[idx].all()


def test_rows_the_ann_cannot_fill_fall_back_to_exact():
    x = clustered(n=300)
    allowed = np.zeros(len(x), bool)
    allowed[[5, 250, 299]] = True  # almost everything filtered out
    index = FaissIndex.build(x, kind="hnsw")
    idx, scores = index.search(x[:4], 3, exclude=np.arange(4), allowed=allowed, vectors=x)
    assert set(idx[0].tolist()) == {5, 250, 299}
    idx2, _ = index.search(x[:1], 5, allowed=allowed, vectors=x)
    assert idx2[0, 3:].tolist() == [-1, -1]  # fewer allowed items than k: unfilled slots are -1


def test_save_load_roundtrip(tmp_path):
    x = clustered(n=400)
    index = FaissIndex.build(x, kind="hnsw")
    index.save(tmp_path / "i.index")
    loaded = FaissIndex.load(tmp_path / "i.index")
    a, _ = index.search(x[:20], 5)
    b, _ = loaded.search(x[:20], 5)
    np.testing.assert_array_equal(a, b)
