"""Baskets and the ranker's session part: basket grouping and visit detection by hand, planted basket themes that
only a basket-level model can see, the session part leaving shoppers' histories as they were, batch == single over
a batch of visits and histories, and a save/load round trip."""

import numpy as np
import pytest

from deepshelf.data.interactions import Histories, Interactions
from deepshelf.models.base import Recommender
from deepshelf.models.baskets import basket_view, visit_rows
from deepshelf.models.itemknn import ItemKNN
from deepshelf.models.ranker.model import Ranker

DAY = 86400
THEMES, PER_THEME = 6, 10
FAST = {"lgbm_trees": 60, "lgbm_min_leaf": 5, "patience_trees": 20, "copurchase_neighbors": 20, "holdout": 0.25,
        "learner": "lightgbm", "new_slots": 0,
        "generators": [{"model": "popularity", "top_n": 30}, {"model": "itemknn", "top_n": 30}]}
SESSION = {"lgbm_trees": 60, "lgbm_min_leaf": 5, "label_days": 40,
           "generators": [{"model": "itemknn", "params": {"alpha": 0.9}, "top_n": 20},
                          {"model": "popularity", "top_n": 20}]}


def planted_baskets(n_users: int = 200, baskets_per_user: int = 8, seed: int = 0) -> Interactions:
    """60 products in 6 themes of 10. Every shopper buys baskets of every theme, one theme per basket (3-5 of its
    products, one timestamp per basket): over a shopper's whole history the themes mix evenly, so only a model
    of baskets can tell which products go together. 120 days."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(n_users):
        for day in np.sort(rng.uniform(0, 120, baskets_per_user)):
            theme = rng.integers(THEMES)
            chosen = rng.choice(PER_THEME, size=rng.integers(3, 6), replace=False) + theme * PER_THEME
            users += [f"u{u}"] * len(chosen)
            items += [f"i{i}" for i in chosen]
            times += [int(day * DAY)] * len(chosen)
    return Interactions.from_ids(np.array(users), np.array(items), timestamp=np.array(times))


def theme_of(inter: Interactions) -> np.ndarray:
    return np.array([int(x[1:]) // PER_THEME for x in inter.item_map.ids])


def visits(inter: Interactions, at: int) -> tuple[Histories, np.ndarray]:
    """Two products of each theme, stamped `at` (an anonymous visit as the session route stamps it), and the
    visit's theme."""
    themes = theme_of(inter)
    lists = [list(np.flatnonzero(themes == t)[[0, 3]]) for t in range(THEMES)]
    return Histories.from_lists(lists, timestamps=[[at] * 2 for _ in lists]), np.arange(THEMES)


@pytest.fixture(scope="module")
def fitted():
    inter = planted_baskets()
    with_session = Ranker(**FAST, session=SESSION).fit(inter)
    without = Ranker(**FAST, session=None).fit(inter)
    return inter, with_session, without


# ---- baskets by hand ---------------------------------------------------------------------------------------
def test_basket_view_groups_one_shoppers_events_close_in_time():
    # shopper a: t=0 (x, y), t=100 (z); shopper b: t=0 (x); events listed out of order
    inter = Interactions.from_ids(np.array(["a", "b", "a", "a"]), np.array(["x", "x", "z", "y"]),
                                  timestamp=np.array([0, 0, 100, 0]))
    same_time = basket_view(inter)
    seqs = same_time.to_sequences()
    assert [inter.item_map.ids[seqs[b]].tolist() for b in range(len(seqs))] == [["x", "y"], ["z"], ["x"]]
    assert same_time.item_map == inter.item_map and len(same_time) == len(inter)
    within = basket_view(inter, gap_s=100).to_sequences()
    assert [inter.item_map.ids[within[b]].tolist() for b in range(len(within))] == [["x", "y", "z"], ["x"]]


def test_visit_rows_are_live_and_short():
    h = Histories.from_lists([[1, 2], [1, 2], [3], [], [4, 5]],
                             timestamps=[[1000, 1000], [10, 1000], [1500], [], [1000, 5000]])
    # row 1 reaches back before `after`; row 3 is empty; row 4 spans more than the gap
    assert visit_rows(h, after=500, gap_s=1800).tolist() == [True, False, True, False, False]
    assert not visit_rows(Histories.from_lists([[1, 2]]), after=0, gap_s=1800).any()  # no timestamps


def test_itemknn_alpha_half_is_the_cosine_and_one_the_conditional_share():
    inter = planted_baskets(n_users=30)
    baskets = basket_view(inter)
    X = baskets.to_csr(binary=True).toarray()
    co = X.T @ X
    count = np.diag(co).copy()
    np.fill_diagonal(co, 0)
    n = inter.n_items
    cosine = ItemKNN(neighbors=n).fit(baskets).item_similarity().toarray()
    np.testing.assert_allclose(cosine, co / np.sqrt(np.outer(count, count)), rtol=1e-5, atol=1e-6)
    share = ItemKNN(neighbors=n, alpha=1.0).fit(baskets).item_similarity().toarray()
    np.testing.assert_allclose(share, co / count[:, None], rtol=1e-5, atol=1e-6)


# ---- the session part ----------------------------------------------------------------------------------------
def test_planted_basket_themes_recovered_for_a_visit(fitted):
    inter, with_session, without = fitted
    assert with_session.session.learner is not None
    h, theme = visits(inter, int(inter.timestamp.max()) + 60)
    themes = theme_of(inter)

    def in_theme(model) -> float:
        idx, _ = model.recommend(h, k=5)
        return float((themes[idx] == theme[:, None]).mean())

    # the shopper ranker's generators see customers, whose histories mix every theme: about chance (8 of 58)
    assert in_theme(without) < 0.5
    assert in_theme(with_session) >= 0.9
    reasons = with_session.reasons(h, with_session.recommend(h, k=5)[0])
    assert set(reasons.ravel()) <= {"also_bought", "popular"} and (reasons == "also_bought").mean() > 0.5


def test_histories_that_are_not_visits_score_as_without_the_session_part(fitted):
    inter, with_session, without = fitted
    hist = inter.to_sequences().select(np.arange(20))
    np.testing.assert_array_equal(with_session.score(hist), without.score(hist))
    # the same items as a visit stamped inside the training data: not a live visit either
    old = Histories(hist.indptr, hist.items, None, np.zeros(len(hist.items), np.int64))
    np.testing.assert_array_equal(with_session.score(old), without.score(old))


def test_batch_of_visits_and_histories_equals_one_at_a_time(fitted):
    inter, model, _ = fitted
    h, _ = visits(inter, int(inter.timestamp.max()) + 60)
    hist = inter.to_sequences().select(np.arange(4))
    lists = [list(h[b]) for b in range(len(h))] + [list(hist[b]) for b in range(len(hist))]
    stamps = [list(h.timestamps[h.indptr[b]:h.indptr[b + 1]]) for b in range(len(h))] + \
        [list(hist.timestamps[hist.indptr[b]:hist.indptr[b + 1]]) for b in range(len(hist))]
    order = np.random.default_rng(1).permutation(len(lists))
    batch = Histories.from_lists([lists[i] for i in order], timestamps=[stamps[i] for i in order])
    scores = model.score(batch)
    single = np.vstack([model.score(batch.select([b])) for b in range(len(batch))])
    np.testing.assert_allclose(scores, single, rtol=1e-5, atol=1e-5)
    idx, _ = model.recommend(batch, k=5)
    reasons = model.reasons(batch, idx)
    for b in range(len(batch)):
        np.testing.assert_array_equal(reasons[b], model.reasons(batch.select([b]), idx[b:b + 1])[0])


def test_save_load_keeps_the_session_part(fitted, tmp_path):
    inter, model, _ = fitted
    h, _ = visits(inter, int(inter.timestamp.max()) + 60)
    model.save(tmp_path / "ranker")
    loaded = Recommender.load(tmp_path / "ranker")
    assert loaded.session is not None and loaded.session.learner is not None
    np.testing.assert_array_equal(loaded.score(h), model.score(h))
    np.testing.assert_array_equal(loaded.reasons(h, model.recommend(h, k=5)[0]),
                                  model.reasons(h, model.recommend(h, k=5)[0]))


def test_too_short_data_leaves_the_session_part_unfitted_and_visits_scored_as_histories():
    inter = planted_baskets(n_users=60)
    short = inter.subset(inter.timestamp < 45 * DAY)  # the session window (40 days) leaves 5 days before it...
    model = Ranker(**{**FAST, "label_days": 10}, session={**SESSION, "label_days": 50}).fit(short)
    assert model.session.learner is None  # ...and here none: nothing before the window
    h, _ = visits(short, int(short.timestamp.max()) + 60)
    assert np.isfinite(model.score(h)).all()


def test_session_text_reaches_the_session_part_alone(monkeypatch, tmp_path):
    """`session.text` on, the ranker's `text` off: the texts are encoded once and only the session part's features
    read them (its `text_last5` column is the cosine to the visit's items); None follows the ranker's `text`."""
    import polars as pl

    from deepshelf.data.catalog import Catalog
    from deepshelf.models.ranker import model as ranker_model
    from deepshelf.models.ranker import session as session_module
    from deepshelf.models.ranker.features import feature_names

    inter = planted_baskets(n_users=80)
    words = ["candle holder", "tea towel", "cake stand", "lunch bag", "night light", "wall clock"]
    ids = inter.item_map.ids.astype(str)
    catalog = Catalog(pl.DataFrame({"item": ids, "title": [f"{words[t]} {i}" for i, t in
                                                           zip(ids, theme_of(inter))]}))
    seen = {"shopper": [], "session": []}
    for key, module in (("shopper", ranker_model), ("session", session_module)):
        real = module.build_features

        def spy(*args, _real=real, _key=key, **kwargs):
            X = _real(*args, **kwargs)
            seen[_key].append(X[:, feature_names([], False).index("text_last5") - len(feature_names([], False))])
            return X

        monkeypatch.setattr(module, "build_features", spy)
    model = Ranker(**FAST, cache_dir=str(tmp_path), session={**SESSION, "text": True}).fit(inter, catalog)
    assert model.text_vectors is not None and not model.config.text
    h, _ = visits(inter, int(inter.timestamp.max()) + 60)
    seen["session"].clear()
    model.score(h)
    column = np.concatenate(seen["session"])
    assert np.isfinite(column).all() and column.max() > 0.5  # a candidate of the visit's theme reads like it
    assert all(np.isnan(c).all() for c in seen["shopper"])  # the shopper ranker stays without text
    assert Ranker(**FAST, session=SESSION)._session_text is False
    assert Ranker(**FAST, text=True, session=SESSION)._session_text is True
    assert Ranker(**FAST, text=True, session={**SESSION, "text": False})._session_text is False


@pytest.mark.parametrize("learner, bag", [("lightgbm", 3), ("ensemble", 2)])
def test_session_learner_bag_and_ensemble_recover_themes_and_round_trip(learner, bag, tmp_path):
    """The session part's learner as a bag of seeds or the ensemble of LightGBM and torch: planted themes still
    recovered, a batch of visits scored as one at a time, and saved and loaded as it was."""
    from deepshelf.models.ranker.learners import BaggedLearner, EnsembleLearner

    inter = planted_baskets(n_users=120)
    model = Ranker(**FAST, torch_epochs=4, session={**SESSION, "learner": learner, "bag": bag}).fit(inter)
    part = model.session.learner
    assert isinstance(part, EnsembleLearner if learner == "ensemble" else BaggedLearner)
    members = part.members.values() if learner == "ensemble" else [part]
    assert all(isinstance(m, BaggedLearner) and len(m.members) == bag for m in members)
    h, theme = visits(inter, int(inter.timestamp.max()) + 60)
    idx, _ = model.recommend(h, k=5)
    assert (theme_of(inter)[idx] == theme[:, None]).mean() >= 0.9
    scores = model.score(h)
    np.testing.assert_allclose(scores, np.vstack([model.score(h.select([b])) for b in range(len(h))]),
                               rtol=1e-5, atol=1e-5)
    model.save(tmp_path / "ranker")
    loaded = Recommender.load(tmp_path / "ranker")
    assert loaded.session.learner.name == part.name
    np.testing.assert_array_equal(loaded.score(h), scores)
