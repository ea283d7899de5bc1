"""`because` for a vector model: the cached row statistics (`explain.RelationRows`) against the whole-row reference
computation, and one cache per loaded run (a reloaded run must not be explained with the old run's rows)."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from deepshelf.index.faiss import VectorIndex
from deepshelf.engine import explain


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


@pytest.mark.parametrize("ann", [False, True])
def test_a_loaded_run_is_warm_before_its_first_request(runs_dir, tmp_path, ann, monkeypatch):
    """Loading a vector model's run fills its row cache with its trending items, so a fresh server (or a swapped
    run) does not fold in and search for them on its first requests; the warmed rows are those a request would
    compute."""
    from deepshelf.engine.holder import load_state
    from deepshelf.storage import open_store
    from tests.api.conftest import make_settings

    monkeypatch.setattr(explain, "WARM_CHUNK", 16)  # several batches of the warm-up on this small catalogue
    settings = make_settings(runs_dir / "als", f"sqlite:///{tmp_path / 'warm.db'}",
                             **({"ann_threshold": 10, "ann_nprobe": 64} if ann else {}))
    store = open_store(settings.database)
    try:
        state = load_state(settings.run, settings, store)
        assert (state.index is not None) == ann
        cache = explain.relation_rows(state)
        trending = state.trending.order[state.trending.order < state.n_model]
        assert len(trending) > explain.WARM_CHUNK  # more than one batch of the warm-up
        assert len(cache) == len(trending)
        fresh = explain.RelationRows(state.model, state.item_vectors, state.index)
        items = trending[[0, 5, len(trending) - 1]]
        for got, want in zip(cache.stats(items), fresh.stats(items)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        monkeypatch.setattr(explain, "WARM_BUDGET_S", 0.0)  # the load's bound: nothing warmed without time for it
        assert len(explain.relation_rows(load_state(settings.run, settings, store))) == 0
    finally:
        store.close()


def reference_because(run: Run, shopper, top) -> np.ndarray:
    """`because` as it was computed before its shortcut for runs without text vectors: each listed item drawn
    from the history is itself when the shopper had it, else the recent item the model relates it to most."""
    out = np.full(len(top), -1, np.int64)
    kinds = [r.split("+")[0] for r in top.reasons]
    wanted = np.array([k in explain.HISTORY_REASONS for k in kinds], bool)
    recent = explain.recent_items(shopper)
    if not wanted.any() or not len(recent):
        return out
    known = shopper.items[shopper.items >= 0]
    own = wanted & np.isin(top.idx, known)
    out[own] = top.idx[own]
    relation = explain._model_relation(run, recent, top.idx)
    if relation is None:
        return out
    for j in np.flatnonzero(wanted & ~own):
        column = relation[:, j]
        if column.max() > 0:
            out[j] = recent[int(np.argmax(column))]
    return out


@pytest.mark.parametrize("indexed", [False, True])
def test_because_without_text_names_the_model_relations_recent_item(indexed):
    """On random histories and lists (reasons drawn from the history or not, items the shopper had, recent
    items seen twice, ids the catalogue lacks), a run without text vectors explains each item as the whole
    relation matrix does."""
    from deepshelf.engine.ranking import Candidates, Shopper

    vectors = planted(5)
    run = Run(vectors, index=VectorIndex.build(vectors, kind="ivf", nprobe=8) if indexed else None)
    run.content = None
    rng = np.random.default_rng(6)
    reasons = ["personal", "also_bought+personal", "trending", "new_arrival", "sequence", "popular"]
    named = 0
    for _ in range(80):
        history = rng.choice(run.n_model, size=int(rng.integers(0, 12)))
        history = np.where(rng.random(len(history)) < 0.1, -1, history)  # ids the catalogue lacks
        if len(history) > 2:
            history[-1] = history[0]  # a recent item seen twice
        shopper = Shopper(history.astype(np.int64), np.zeros(len(history), np.int8), np.zeros(0, np.int64),
                          np.arange(len(history), dtype=np.int64))
        known = history[history >= 0]
        near = np.argsort(-(vectors @ vectors[known[-1]]))[:5] if len(known) else np.zeros(0, np.int64)
        idx = np.concatenate([near, rng.choice(run.n_model, size=6), known[:2]])
        top = Candidates.of(idx, np.linspace(1, 0, len(idx)), [reasons[i] for i in rng.integers(len(reasons),
                                                                                                size=len(idx))])
        got = explain._because(run, None, shopper, top)
        np.testing.assert_array_equal(got, reference_because(run, shopper, top))
        named += int((got >= 0).sum())
    assert named > 40
