"""The contract every registered model passes (in the spirit of implicit's shared test mixin): it fits on small
planted data, scores float32 [B, n_items], a batch scores and recommends as its rows one at a time (on histories
that repeat items), save/load gives identical scores, an empty history gets the popular items, unknown ids are
refused, seen items and filters are respected, and a model that declares a serving protocol keeps its promise.

A newly registered model is picked up from `models.registry.MODELS` and needs an entry in SMALL below."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from deepshelf.data.catalog import Catalog
from deepshelf.data.interactions import Histories, Interactions
from deepshelf.data.splits import leave_one_out
from deepshelf.errors import DeepshelfError
from deepshelf.evaluation.evaluate import evaluate
from deepshelf.models.base import ItemSimilarity, Recommender, VectorScorer
from deepshelf.models.registry import MODELS, model_class
from tests.conftest import group_of_item, planted_clusters

# Small, fast parameters for each registered model. `cache_dir` (text and image encoders) is set per session.
TINY_SEQUENCE = {"epochs": 2, "dim": 16, "max_len": 16, "batch_size": 64, "progress": False, "threads": 1}
SMALL: dict[str, dict] = {
    "popularity": {},
    "trending": {},
    "itemknn": {"neighbors": 20},
    "ease": {"l2": 10.0},
    "als": {"factors": 8, "iterations": 10, "regularization": 0.1, "threads": 1},
    "sasrec": TINY_SEQUENCE,
    "sasrec-content": {**TINY_SEQUENCE, "similarity_dim": 8},
    "content": {"images": False, "heads": {"epochs": 2, "hidden": 16}, "align": {"epochs": 2, "hidden": 16}},
    "buyagain": {},
    "newitems": {"max_age_days": 0.02},
    # the planted data spans ~1.6 hours: labels from its last 0.01 days (the repeat purchases, so label "all")
    "ranker": {"label_days": 0.01, "label_items": "all", "learner": "lightgbm", "lgbm_trees": 30,
               "lgbm_min_leaf": 5, "copurchase_neighbors": 20,
               "generators": [{"model": "trending", "top_n": 30}, {"model": "itemknn", "top_n": 30,
                                                                   "params": {"neighbors": 20}},
                              {"model": "buyagain", "top_n": 10},
                              {"model": "newitems", "top_n": 10, "params": {"max_age_days": 0.02}}],
               "new_slots": 1, "new_slot_rank": 5, "new_max_age_days": 0.02},
}
PERSONAL = ["itemknn", "ease", "als"]  # recover the planted groups (test_planted_groups_recovered)
GROUP_WORDS = ["running shoes", "red lipstick", "garden hose", "coffee beans"]


def small_params(name: str) -> dict:
    if name not in SMALL:
        pytest.fail(f"add small test params for {name} to SMALL in tests/models/test_contract.py")
    return SMALL[name]


def repeating_data() -> Interactions:
    """The planted clusters, where each shopper later buys their first three items again: histories repeat."""
    base = planted_clusters()
    users, items = base.user_map.ids[base.user], base.item_map.ids[base.item]
    again = np.flatnonzero(np.r_[True, base.user[1:] != base.user[:-1]])  # each shopper's first event
    again = np.concatenate([again, again + 1, again + 2])
    return Interactions.from_ids(np.concatenate([users, users[again]]), np.concatenate([items, items[again]]),
                                 timestamp=np.concatenate([base.timestamp, base.timestamp.max() + 1 + again]))


def catalog_for(inter: Interactions) -> Catalog:
    groups = group_of_item(inter)
    ids = inter.item_map.ids.astype(str)
    return Catalog(pl.DataFrame({"item": ids, "title": [f"{GROUP_WORDS[g]} model {i}" for g, i in zip(groups, ids)],
                                 "category": [GROUP_WORDS[g] for g in groups]}))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    inter = repeating_data()
    return inter, catalog_for(inter), str(tmp_path_factory.mktemp("encoder-cache"))


_fitted: dict[str, Recommender] = {}


def fitted(name: str, world) -> Recommender:
    """`name` fitted once on the repeating planted data (and its catalogue, for the models that read one)."""
    if name not in _fitted:
        inter, catalog, cache = world
        klass = model_class(name)
        params = dict(small_params(name))
        if "cache_dir" in klass.Config.model_fields:
            params["cache_dir"] = cache
        _fitted[name] = klass(**params).fit(inter, catalog)
    return _fitted[name]


def repeating_histories(inter: Interactions) -> Histories:
    """12 histories of various lengths, several repeating an item, and one empty."""
    seqs = inter.to_sequences().select(np.arange(0, 60, 5))
    lists = [list(seqs[b][: 2 + b]) + list(seqs[b][:2]) for b in range(len(seqs))]
    lists[3] = []
    return Histories.from_lists(lists)


ALL = sorted(MODELS)


def test_every_registered_model_has_small_params():
    missing = [name for name in MODELS if name not in SMALL]
    assert not missing, f"add small test params for {', '.join(missing)} to SMALL in tests/models/test_contract.py"


@pytest.mark.parametrize("name", ALL)
def test_score_shape_and_batch_equals_single(name, world):
    model = fitted(name, world)
    batch = repeating_histories(world[0])
    scores = model.score(batch)
    assert scores.shape == (len(batch), model.n_items) and scores.dtype == np.float32
    assert np.isfinite(scores[batch.lengths > 0]).all()
    single = np.vstack([model.score(batch.select([b])) for b in range(len(batch))])
    np.testing.assert_allclose(scores, single, rtol=1e-5, atol=1e-5)
    idx, top = model.recommend(batch, k=7)
    one_by_one = [model.recommend(batch.select([b]), k=7) for b in range(len(batch))]
    np.testing.assert_array_equal(idx, np.vstack([i for i, _ in one_by_one]))
    np.testing.assert_allclose(top, np.vstack([s for _, s in one_by_one]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_save_load_gives_identical_scores(name, world, tmp_path):
    model = fitted(name, world)
    batch = repeating_histories(world[0])
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.config == model.config and loaded.item_map == model.item_map
    np.testing.assert_array_equal(loaded.score(batch), model.score(batch))
    np.testing.assert_array_equal(loaded.recommend(batch, k=7)[0], model.recommend(batch, k=7)[0])


@pytest.mark.parametrize("name", ALL)
def test_empty_history_gets_the_popular_items(name, world):
    model = fitted(name, world)
    inter = world[0]
    counts = np.zeros(model.n_items)
    mine = model.item_map.lookup(inter.item_map.ids)
    counts[mine[mine >= 0]] = inter.item_popularity()[mine >= 0]
    idx, scores = model.recommend(Histories.from_lists([[]]), k=5)
    assert set(counts[idx[0]]) == set(np.sort(counts)[-5:])
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first


@pytest.mark.parametrize("name", ALL)
def test_unknown_ids_are_refused_not_scored(name, world):
    model = fitted(name, world)
    known = model.item_map.ids[:2].tolist()
    idx = model.item_map.lookup(["no-such-item", known[0], "nor-this", known[1]])
    assert idx[[0, 2]].tolist() == [-1, -1] and (idx[[1, 3]] >= 0).all()
    for bad in ([int(idx[0])], [model.n_items]):
        with pytest.raises(DeepshelfError, match="not one of the model's"):
            model.recommend(Histories.from_lists([[int(idx[1])], bad]), k=3)


@pytest.mark.parametrize("name", ALL)
def test_seen_items_never_recommended_and_filters_respected(name, world):
    model = fitted(name, world)
    batch = repeating_histories(world[0])
    idx, scores = model.recommend(batch, k=20)
    for b in range(len(batch)):
        assert not set(idx[b].tolist()) & set(batch[b].tolist())
    allowed = np.zeros(model.n_items, bool)
    allowed[[3, 4]] = True
    idx, scores = model.recommend(Histories.from_lists([[0]]), k=4, filters=allowed)
    assert set(idx[0, :2]) == {3, 4}
    assert list(idx[0, 2:]) == [-1, -1] and np.all(np.isinf(scores[0, 2:]))


@pytest.mark.parametrize("name", ALL)
def test_serving_protocols_keep_their_promise(name, world):
    """VectorScorer: score == query_vectors @ item_vectors.T; ItemSimilarity: score == sum of the history's rows."""
    model = fitted(name, world)
    batch = repeating_histories(world[0])
    batch = batch.select(np.flatnonzero(batch.lengths > 0))
    if isinstance(model, VectorScorer):
        items, queries = model.item_vectors(), model.query_vectors(batch)
        assert items.dtype == np.float32 and items.shape[0] == model.n_items
        assert queries.dtype == np.float32 and queries.shape == (len(batch), items.shape[1])
        np.testing.assert_allclose(queries @ items.T, model.score(batch), rtol=1e-4, atol=1e-4)
    if isinstance(model, ItemSimilarity):
        sim = model.item_similarity()
        assert sim.shape == (model.n_items, model.n_items)
        expected = np.vstack([sim[np.unique(batch[b])].sum(0) for b in range(len(batch))])
        np.testing.assert_allclose(model.score(batch), expected, rtol=1e-5, atol=1e-6)


def test_protocols_are_declared_where_serving_expects_them():
    assert {n for n in ("als", "sasrec", "sasrec-content") if issubclass(model_class(n), VectorScorer)} == {
        "als", "sasrec", "sasrec-content"}
    assert issubclass(model_class("itemknn"), ItemSimilarity)
    assert not issubclass(model_class("ease"), VectorScorer) and not issubclass(model_class("ease"), ItemSimilarity)


# ---- model-specific behaviour on planted data ---------------------------------------------------------------
@pytest.mark.parametrize("name", PERSONAL)
def test_planted_groups_recovered(name, clusters):
    """Top-10 of each user lies in the user's own planted group, and held-out items are found."""
    split = leave_one_out(clusters)
    model = model_class(name)(**SMALL[name]).fit(split.train)
    groups = group_of_item(clusters)
    idx, _ = model.recommend(split.test.inputs, k=10)
    user_group = groups[split.test.inputs.items[split.test.inputs.indptr[:-1]]]
    in_group = (groups[idx] == user_group[:, None]).mean()
    assert in_group > 0.95, f"{name}: only {in_group:.2f} of recommendations in the shopper's group"
    result = evaluate(model, split.test, ks=(10,))
    # 25 items per group, 11 seen: a random in-group guess of 10 from 14 would give ~0.7; popularity-blind
    # random over all 100 items gives ~0.1
    assert result.metrics["hr@10"] > 0.6


def test_trending_prefers_recent_items():
    day = 86400
    # item "old" had 10 sales 60 days ago; item "new" 4 sales in the last day
    users = [f"u{i}" for i in range(14)]
    items = ["old"] * 10 + ["new"] * 4
    ts = [0] * 10 + [60 * day] * 4
    inter = Interactions.from_ids(np.array(users), np.array(items), timestamp=np.array(ts))
    pop, trend = model_class("popularity")().fit(inter), model_class("trending")().fit(inter)
    first = lambda m: inter.item_map.ids[m.recommend(Histories.from_lists([[]]), k=1)[0][0, 0]]  # noqa: E731
    assert first(pop) == "old" and first(trend) == "new"


def test_als_fold_in_matches_implicit(clusters):
    """The batched fold-in solves the same equation as implicit's own per-user solver (the reference)."""
    from implicit.cpu.als import AlternatingLeastSquares

    model = model_class("als")(**SMALL["als"]).fit(clusters)
    hist = clusters.to_sequences().select(np.arange(30))
    ours = model.user_factors(hist)
    ref = AlternatingLeastSquares(factors=8, regularization=0.1, alpha=model.config.alpha)
    ref.item_factors = model.item_factors.copy()
    ref.user_factors = np.zeros((30, 8), np.float32)
    csr = hist.to_csr(clusters.n_items)
    csr.data[:] = 1.0
    theirs = ref.recalculate_user(np.arange(30), csr)
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("use_weights", [False, True])
def test_als_fold_in_confidences_by_hand(use_weights):
    """The fold-in's confidences, against the normal equations written out per shopper: a repeated item counts once
    (or adds its weights with `use_weights`), an empty history folds in to zero, and a batch of mixed lengths
    (padded per group) gives each row its own solution."""
    from deepshelf.data.idmap import IdMap

    rng = np.random.default_rng(0)
    model = model_class("als")(factors=4, alpha=10.0, regularization=0.1, use_weights=use_weights)
    model.item_map = IdMap(np.array([f"i{j}" for j in range(9)], dtype=object))
    model._use_factors(rng.normal(size=(9, 4)).astype(np.float32))
    lists = [[3, 5, 3], [], [8], [0, 1, 2, 3, 4, 5, 6, 7, 8, 0], [5, 3]]
    weights = [[1.0, 2.0, 4.0], [], [3.0], [1.0] * 10, [2.0, 1.0]]
    hist = Histories.from_lists(lists)
    got = model.user_factors(hist, np.concatenate([np.asarray(w, np.float32) for w in weights]))
    Y = model.item_factors.astype(np.float64)
    for row, (items, w) in enumerate(zip(lists, weights)):
        conf: dict[int, float] = {}
        for item, weight in zip(items, w):
            conf[item] = conf.get(item, 0.0) + weight if use_weights else 1.0
        A = Y.T @ Y + 0.1 * np.eye(4)
        b = np.zeros(4)
        for item, c in conf.items():
            A += (10.0 * c - 1.0) * np.outer(Y[item], Y[item])
            b += 10.0 * c * Y[item]
        np.testing.assert_allclose(got[row], np.linalg.solve(A, b), rtol=1e-5, atol=1e-6)
    assert not got[1].any()
    if use_weights:  # [3, 5, 3] weighs item 3 by 5, [5, 3] by 1: not the same shopper
        assert not np.allclose(got[0], got[4])
    else:  # an item counts once: [3, 5, 3] and [5, 3] are the same shopper
        np.testing.assert_allclose(got[0], got[4], rtol=1e-6)
    with pytest.raises(DeepshelfError, match="out of range"):
        model.user_factors(Histories.from_lists([[9]]))
    # a one-row batch (what a served request folds in) takes its own path: the same answer as its row in a batch,
    # by hand as above, and the same range check
    for row, (items, w) in enumerate(zip(lists, weights)):
        one = model.user_factors(Histories.from_lists([items]), np.asarray(w, np.float32))
        assert one.shape == (1, 4) and one.dtype == np.float32
        np.testing.assert_allclose(one[0], got[row], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.user_factors(Histories.from_lists([[3, 5, 3]]))[0],
                               model.user_factors(Histories.from_lists([[3, 5, 3], [8]]))[0], rtol=1e-6, atol=1e-7)
    with pytest.raises(DeepshelfError, match="out of range"):
        model.user_factors(Histories.from_lists([[-1]]))
    # a batch of one-item histories (what explanations fold in) is solved by Sherman-Morrison: the same answers
    singles = model.user_factors(Histories.from_lists([[8], [3], [8], [0]]))
    for row, item in enumerate([8, 3, 8, 0]):
        np.testing.assert_allclose(singles[row], model.user_factors(Histories.from_lists([[item], [1, 2]]))[0],
                                   rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(singles[0], got[2] if not use_weights else singles[2], rtol=1e-5, atol=1e-6)
    with pytest.raises(DeepshelfError, match="out of range"):
        model.user_factors(Histories.from_lists([[1], [9]]))


def test_als_gram_is_kept_from_fit_and_load(clusters, tmp_path):
    """YᵀY + λI is computed when the factors are learned or loaded, and fold-ins use that copy."""
    model = model_class("als")(**SMALL["als"]).fit(clusters)
    Y = model.item_factors.astype(np.float64)
    np.testing.assert_allclose(model._gram, Y.T @ Y + 0.1 * np.eye(8), rtol=1e-10)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded._gram, model._gram)
    hist = clusters.to_sequences().select(np.arange(5))
    loaded._gram = loaded._gram + 1e3 * np.eye(8)  # a fold-in that recomputed YᵀY would not see this
    assert not np.allclose(loaded.user_factors(hist), model.user_factors(hist), atol=1e-3)


def test_bad_parameters_are_refused():
    with pytest.raises(DeepshelfError, match="'l2'"):
        model_class("ease")(l2=-1)
    with pytest.raises(DeepshelfError, match="unknown parameter 'neigbors'"):
        model_class("itemknn")(neigbors=3)
    with pytest.raises(DeepshelfError, match="unknown model 'nope'"):
        model_class("nope")


def test_corrupt_saved_model_is_refused(clusters, tmp_path):
    model = model_class("ease")(**SMALL["ease"]).fit(clusters)
    model.save(tmp_path / "m")
    (tmp_path / "m" / "weights.npz").write_bytes(b"not a zip")
    with pytest.raises(DeepshelfError, match="cannot load ease"):
        Recommender.load(tmp_path / "m")
