"""The vector index (index/faiss.py) against the exact reference (index/exact.py): every approximate kind's recall,
the filters, the exact fill of rows the ANN search leaves short, and save/load."""

from __future__ import annotations

import numpy as np
import pytest

from deepshelf.errors import DeepshelfError
from deepshelf.index.exact import exact_search, topk
from deepshelf.index.faiss import VectorIndex, recall_at_k


def clustered(n=3000, d=32, clusters=30, seed=0, noise=0.5, unit=True):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    x = centres[rng.integers(0, clusters, n)] + noise * rng.normal(size=(n, d))
    if unit:
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def test_hnsw_recall_against_exact():
    x = clustered()
    rows = np.arange(0, len(x), 7)
    index = VectorIndex.build(x, kind="hnsw")
    assert not index.exact
    approx, approx_scores = index.search(x[rows], 10, exclude=rows)
    exact, exact_scores = exact_search(x[rows], x, 10, exclude=rows)
    assert recall_at_k(approx, exact) >= 0.95
    assert not (approx == rows[:, None]).any()  # the query item never comes back
    assert np.all(np.diff(approx_scores, axis=1) <= 1e-6)  # best first


def test_ivf_recall_at_10_vs_exact():
    vectors = clustered(30_000, 32, 200, noise=0.35, unit=False)
    rng = np.random.default_rng(1)
    # queries like a shopper's: the mean of a few items' vectors
    queries = np.stack([vectors[rng.choice(len(vectors), 3)].mean(0) for _ in range(200)])
    ann = VectorIndex.build(vectors, kind="ivf", nprobe=24)
    assert not ann.exact and ann.faiss_index is not None
    exact_idx, _ = topk(queries @ vectors.T, 10)
    approx_idx, approx_scores = ann.search(queries, 10)
    assert recall_at_k(approx_idx, exact_idx) >= 0.95
    # IVF-Flat stores the vectors themselves: a found item's score is its exact inner product
    assert np.allclose(approx_scores[:, 0], (queries * vectors[approx_idx[:, 0]]).sum(1), atol=1e-3)


def test_recall_helper_on_a_hand_computed_case():
    exact = np.array([[1, 2, 3], [4, 5, -1]])
    approx = np.array([[3, 9, 1], [5, 7, 8]])
    assert recall_at_k(approx, exact) == pytest.approx(3 / 5)  # 2 of 3, then 1 of 2 (the -1 slot is no target)


@pytest.mark.parametrize("kind", ["exact", "flat"])
def test_exact_kinds_are_the_reference_and_respect_the_filters(kind):
    x = clustered(n=500)
    rows = np.arange(50)
    allowed = np.ones(len(x), bool)
    allowed[::3] = False
    index = VectorIndex.build(x, kind=kind)
    assert index.exact
    idx, scores = index.search(x[rows], 5, exclude=rows, allowed=allowed)
    ref = x[rows] @ x.T
    ref[:, ~allowed] = -np.inf
    ref[rows, rows] = -np.inf
    want = np.argsort(-ref, axis=1, kind="stable")[:, :5]
    np.testing.assert_allclose(scores, np.take_along_axis(ref, want, 1), atol=1e-5)
    assert allowed[idx].all() and not (idx == rows[:, None]).any()
    plain, plain_scores = index.search(x[:5] + 0.01, 7)
    ref_idx, ref_scores = topk((x[:5] + 0.01) @ x.T, 7)
    assert np.array_equal(plain, ref_idx) and np.allclose(plain_scores, ref_scores, atol=1e-5)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_rows_the_ann_cannot_fill_fall_back_to_exact(kind):
    x = clustered(n=2000)
    allowed = np.zeros(len(x), bool)
    allowed[[5, 250, 299]] = True  # almost everything filtered out
    index = VectorIndex.build(x, kind=kind, nprobe=1)
    idx, scores = index.search(x[:4], 3, exclude=np.arange(4), allowed=allowed)
    assert set(idx[0].tolist()) == {5, 250, 299}
    idx2, _ = index.search(x[:1], 5, allowed=allowed)
    assert idx2[0, 3:].tolist() == [-1, -1]  # fewer allowed items than k: unfilled slots are -1


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_save_load_roundtrip(tmp_path, kind):
    x = clustered(n=1000)
    index = VectorIndex.build(x, kind=kind)
    index.save(tmp_path / "i.index")
    loaded = VectorIndex.load(tmp_path / "i.index", x)
    assert loaded.kind == kind
    a, _ = index.search(x[:20], 5)
    b, _ = loaded.search(x[:20], 5)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(DeepshelfError, match="expected 999"):
        VectorIndex.load(tmp_path / "i.index", x[:999])


def test_unknown_kind_is_refused():
    with pytest.raises(DeepshelfError, match="unknown vector index kind 'annoy'"):
        VectorIndex.build(clustered(n=10), kind="annoy")


def test_topk_ties_at_the_cut_keep_the_lowest_indices_so_prefixes_agree():
    """Ties straddling the k-th place break towards the lower index: the top 5 is the first 5 of the top 20
    (an evaluation at k=10 from top-20 lists equals one from top-10 lists)."""
    assert topk(np.array([[1.0, 1.0, 1.0, 1.0, 0.0]]), 2)[0].tolist() == [[0, 1]]
    assert topk(np.array([[0.0, 2.0, 1.0, 1.0, 1.0, 1.0]]), 3)[0].tolist() == [[1, 2, 3]]
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(200, 300)).astype(np.float32)  # many ties at every cut
    scores[:, 7] = -np.inf
    wide, _ = topk(scores, 20)
    for k in (1, 5, 10):
        narrow, _ = topk(scores, k)
        assert np.array_equal(narrow, wide[:, :k])
    reference = np.lexsort((np.broadcast_to(np.arange(300), scores.shape), -scores), axis=1)[:, :10]
    assert np.array_equal(topk(scores, 10)[0], reference)


@pytest.mark.parametrize("kind", ["ivf8", "hnsw", "flat"])
def test_search_within_walks_only_the_allowed_items(kind):
    """A filter passing few items still fills k (the index walks only them, where a filter over what it found would
    come back short), answers only allowed items, and recalls the exact filtered top-k."""
    x = clustered(20_000, 32, 100, noise=0.4)
    index = VectorIndex.build(x, kind=kind, nprobe=16)
    rng = np.random.default_rng(3)
    recall = []
    for share in (0.02, 0.3, 1.0):
        allowed = rng.random(len(x)) < share
        for q in x[rng.choice(len(x), 40, replace=False)]:
            rows, scores = index.search_within(q, 20, None if share == 1.0 else allowed, exact_below=100)
            assert len(rows) == 20 and (share == 1.0 or allowed[rows].all())
            assert np.all(np.diff(scores) <= 1e-5)
            exact = np.flatnonzero(allowed) if share < 1.0 else np.arange(len(x))
            best = exact[topk((x[exact] @ q)[None, :], 20)[0][0]]
            recall.append(len(set(rows.tolist()) & set(best.tolist())) / 20)
    assert np.mean(recall) >= 0.9
    # a filter passing at most `exact_below` items is answered exactly, with fewer than k when that is all there is
    few = np.zeros(len(x), bool)
    few[[5, 77, 901]] = True
    rows, scores = index.search_within(x[77], 10, few)
    assert rows.tolist()[0] == 77 and sorted(rows.tolist()) == [5, 77, 901]
    np.testing.assert_allclose(scores, x[rows] @ x[77], rtol=1e-5)


def test_ivf8_is_a_quarter_of_ivf_and_survives_save_load(tmp_path):
    x = clustered(8000, 64, 40, noise=0.4)
    index = VectorIndex.build(x, kind="ivf8", nprobe=8)
    index.save(tmp_path / "i.faiss")
    back = VectorIndex.load(tmp_path / "i.faiss", x)
    assert back.kind == "ivf8"
    back.faiss_index.nprobe = 8
    q = x[:50]
    np.testing.assert_array_equal(index.search(q, 10)[0], back.search(q, 10)[0])
    flat = VectorIndex.build(x, kind="ivf", nprobe=8)
    for ix in (index, flat):
        ix.save(tmp_path / f"{ix.kind}.faiss")
    assert (tmp_path / "ivf8.faiss").stat().st_size < 0.3 * (tmp_path / "ivf.faiss").stat().st_size
