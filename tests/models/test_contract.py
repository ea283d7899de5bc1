"""The contract every classic model passes: planted structure recovered, batch == single, save/load
reproduces scores, an unknown (empty-history) shopper gets the popular items, seen items and filters respected."""

import numpy as np
import pytest

from deepshelf.data.interactions import Histories
from deepshelf.data.splits import leave_one_out
from deepshelf.errors import DeepshelfError
from deepshelf.evaluation.evaluate import evaluate
from deepshelf.models.base import Recommender
from deepshelf.models.registry import model_class
from tests.conftest import group_of_item

PERSONAL = {"itemknn": {"neighbors": 20}, "ease": {"l2": 10.0}, "als": {"factors": 8, "iterations": 10,
                                                                            "regularization": 0.1, "threads": 1}}
ALL = {"popularity": {}, "trending": {}, **PERSONAL}


def fitted(name, inter):
    return model_class(name)(**ALL[name]).fit(inter)


@pytest.mark.parametrize("name", sorted(PERSONAL))
def test_planted_groups_recovered(name, clusters):
    """Top-10 of each user lies in the user's own planted group, and held-out items are found."""
    split = leave_one_out(clusters)
    model = fitted(name, split.train)
    groups = group_of_item(clusters)
    idx, _ = model.recommend(split.test.inputs, k=10)
    user_group = groups[split.test.inputs.items[split.test.inputs.indptr[:-1]]]
    in_group = (groups[idx] == user_group[:, None]).mean()
    assert in_group > 0.95, f"{name}: only {in_group:.2f} of recommendations in the shopper's group"
    result = evaluate(model, split.test, ks=(10,))
    # 25 items per group, 11 seen: a random in-group guess of 10 from 14 would give ~0.7; popularity-blind
    # random over all 100 items gives ~0.1
    assert result.metrics["hr@10"] > 0.6


def test_popularity_recovers_planted_order(clusters):
    model = fitted("popularity", clusters)
    counts = clusters.item_popularity()
    idx, _ = model.recommend(Histories.from_lists([[]]), k=5)
    assert set(counts[idx[0]]) == set(np.sort(counts)[-5:])


def test_trending_prefers_recent_items():
    from deepshelf.data.interactions import Interactions

    day = 86400
    # item "old" had 10 sales 60 days ago; item "new" 4 sales in the last day
    users = [f"u{i}" for i in range(14)]
    items = ["old"] * 10 + ["new"] * 4
    ts = [0] * 10 + [60 * day] * 4
    inter = Interactions.from_ids(np.array(users), np.array(items), timestamp=np.array(ts))
    pop, trend = fitted("popularity", inter), fitted("trending", inter)
    first = lambda m: inter.item_map.ids[m.recommend(Histories.from_lists([[]]), k=1)[0][0, 0]]
    assert first(pop) == "old" and first(trend) == "new"


@pytest.mark.parametrize("name", sorted(ALL))
def test_batch_equals_single_and_save_load(name, clusters, tmp_path):
    split = leave_one_out(clusters)
    model = fitted(name, split.train)
    batch = split.test.inputs.select(np.arange(12))
    scores = model.score(batch)
    assert scores.shape == (12, clusters.n_items) and scores.dtype == np.float32
    single = np.vstack([model.score(batch.select([b])) for b in range(12)])
    np.testing.assert_allclose(scores, single, rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.config == model.config
    np.testing.assert_array_equal(loaded.score(batch), scores)
    np.testing.assert_array_equal(loaded.recommend(batch, k=7)[0], model.recommend(batch, k=7)[0])


@pytest.mark.parametrize("name", sorted(ALL))
def test_unknown_shopper_gets_popular_items_and_seen_excluded(name, clusters):
    model = fitted(name, clusters)
    idx, scores = model.recommend(Histories.from_lists([[], [0, 1, 2]]), k=5)
    counts = clusters.item_popularity()
    assert set(counts[idx[0]]) == set(np.sort(counts)[-5:])
    assert not set(idx[1]) & {0, 1, 2}
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first


@pytest.mark.parametrize("name", sorted(ALL))
def test_filters_restrict_items(name, clusters):
    model = fitted(name, clusters)
    allowed = np.zeros(clusters.n_items, bool)
    allowed[[3, 4]] = True
    idx, scores = model.recommend(Histories.from_lists([[0]]), k=4, filters=allowed)
    assert set(idx[0, :2]) == {3, 4}
    assert list(idx[0, 2:]) == [-1, -1] and np.all(np.isinf(scores[0, 2:]))


def test_als_fold_in_matches_implicit(clusters):
    """The batched fold-in solves the same equation as implicit's own per-user solver (the reference)."""
    from implicit.cpu.als import AlternatingLeastSquares

    model = fitted("als", clusters)
    hist = clusters.to_sequences().select(np.arange(30))
    ours = model.user_factors(hist)
    ref = AlternatingLeastSquares(factors=8, regularization=0.1, alpha=model.config.alpha)
    ref.item_factors = model.item_factors.copy()
    ref.user_factors = np.zeros((30, 8), np.float32)
    csr = hist.to_csr(clusters.n_items)
    csr.data[:] = 1.0
    theirs = ref.recalculate_user(np.arange(30), csr)
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4)


def test_bad_parameters_are_refused():
    with pytest.raises(DeepshelfError, match="'l2'"):
        model_class("ease")(l2=-1)
    with pytest.raises(DeepshelfError, match="unknown parameter 'neigbors'"):
        model_class("itemknn")(neigbors=3)
    with pytest.raises(DeepshelfError, match="unknown model 'nope'"):
        model_class("nope")


def test_corrupt_saved_model_is_refused(clusters, tmp_path):
    model = fitted("ease", clusters)
    model.save(tmp_path / "m")
    (tmp_path / "m" / "weights.npz").write_bytes(b"not a zip")
    with pytest.raises(DeepshelfError, match="cannot load ease"):
        Recommender.load(tmp_path / "m")
