"""`because` for a vector model: the cached row statistics (`explain.RelationRows`) against the whole-row reference
computation, and one cache per loaded run (a reloaded run must not be explained with the old run's rows)."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from deepshelf.index.faiss import VectorIndex
from deepshelf.serving import explain


class VectorModel:
    """A vector model whose query after a one-item history is that item's vector times `scale`."""

    def __init__(self, vectors: np.ndarray, scale: float = 1.0):
        self.vectors, self.scale = vectors, scale

    def query_vectors(self, histories) -> np.ndarray:
        return np.stack([self.vectors[histories.items[histories.indptr[b]:histories.indptr[b + 1]]].sum(0)
                         for b in range(len(histories.indptr) - 1)]).astype(np.float32) * self.scale


class Run:
    """What `_model_relation` reads of a LoadedRun (`index`: a big catalogue's ANN index)."""

    def __init__(self, vectors: np.ndarray, scale: float = 1.0, index=None):
        self.model = VectorModel(vectors, scale)
        self.item_vectors = vectors
        self.n_model = len(vectors)
        self.similarity = None
        self.dense_ok = index is None
        self.index = index


def reference(run: Run, recent: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The whole rows after each recent item alone, standardised; an item relates when it is among a row's
    RELATED_TOP best (the computation `_model_relation` made on every request before the cache)."""
    rows = (run.item_vectors[recent] * run.model.scale) @ run.item_vectors.T
    rows = rows.astype(np.float64)
    z = (rows - rows.mean(axis=1, keepdims=True)) / rows.std(axis=1, keepdims=True)
    kth = np.sort(z, axis=1)[:, -explain.RELATED_TOP, None]
    listed = z[:, items]
    return np.where(listed >= kth, np.maximum(listed, 1e-6), 0.0)


def planted(seed: int, n: int = 3000, d: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(30, d))
    return (centres[rng.integers(30, size=n)] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("indexed", [False, True])
def test_cached_rows_relate_the_same_items_as_the_whole_row_computation(indexed):
    vectors = planted(0)
    # a big catalogue's run takes the RELATED_TOP-th best score from its IVF index: probing every list, it is exact
    run = Run(vectors, index=VectorIndex.build(vectors, kind="ivf", nprobe=10_000) if indexed else None)
    rng = np.random.default_rng(1)
    for _ in range(20):
        recent = rng.choice(run.n_model, size=5, replace=False)
        # listed items: some of a recent item's nearest (related), the rest anywhere (mostly not)
        near = np.argsort(-(run.item_vectors @ run.item_vectors[recent[0]]))[:6]
        items = np.concatenate([near, rng.choice(run.n_model, size=6)])
        got = explain._model_relation(run, recent, items)
        want = reference(run, recent, items)
        assert ((got > 0) == (want > 0)).all()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        assert (got > 0).any()
    assert 0 < len(explain.relation_rows(run)) <= 100  # each recent item's row computed once


def test_each_loaded_run_has_its_own_cache():
    vectors = planted(2)
    old, new = Run(vectors), Run(vectors[::-1].copy())  # a retrained run: other vectors, same item indices
    recent, items = np.array([3, 10]), np.arange(0, 3000, 7)
    explain._model_relation(old, recent, items)
    assert explain.relation_rows(new) is not explain.relation_rows(old)
    got = explain._model_relation(new, recent, items)
    assert ((got > 0) == (reference(new, recent, items) > 0)).all()
    assert not ((got > 0) == (reference(old, recent, items) > 0)).all()
    key = id(old)
    del old
    gc.collect()
    assert key not in explain._CACHES  # a run no longer served drops its rows
