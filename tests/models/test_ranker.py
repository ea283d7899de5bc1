"""The learned ranker: a planted feature learned where no generator can, no label leakage, config errors that
name the field, save/load and batch == single, reasons."""

import numpy as np
import polars as pl
import pytest

from deepshelf.data.catalog import Catalog
from deepshelf.data.interactions import Histories, Interactions
from deepshelf.errors import DeepshelfError
from deepshelf.models.base import Recommender
from deepshelf.models.ranker.model import Ranker

DAY = 86400
FAST = {"lgbm_trees": 60, "lgbm_min_leaf": 5, "patience_trees": 20, "torch_epochs": 6, "torch_groups": 16,
        "copurchase_neighbors": 20, "holdout": 0.25}


def price_tiers(n_users: int = 240, seed: int = 0) -> tuple[Interactions, Catalog, np.ndarray]:
    """60 items in three price tiers (1, 10, 100); each shopper only ever buys items of their own tier.

    Days 0-60: 4 purchases each; days 60-90 (the label window) and 90-120 (held out): 2 new items each. Items are
    bought about equally often, so popularity says nothing about a shopper: only the price does.
    """
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    tier = rng.integers(0, 3, n_users)
    for u in range(n_users):
        chosen = rng.choice(20, size=8, replace=False) + 20 * tier[u]
        days = np.concatenate([np.sort(rng.uniform(0, 60, 4)), rng.uniform(60, 90, 2), rng.uniform(90, 120, 2)])
        users += [f"u{u}"] * 8
        items += [f"i{i}" for i in chosen]
        times += list((days * DAY).astype(np.int64))
    inter = Interactions.from_ids(np.array(users), np.array(items), timestamp=np.array(times))
    ids = [f"i{i}" for i in range(60)]
    catalog = Catalog(pl.DataFrame({"item": ids, "title": ids, "price": [10.0 ** (i // 20) for i in range(60)]}))
    return inter, catalog, tier


def item_tiers(inter: Interactions) -> np.ndarray:
    return np.array([int(x[1:]) // 20 for x in inter.item_map.ids])


@pytest.mark.parametrize("learner", ["lightgbm", "torch"])
def test_planted_price_feature_learned_where_no_generator_can(learner):
    inter, catalog, tier = price_tiers()
    cut = 90 * DAY
    train = inter.subset(inter.timestamp < cut)
    hist = train.to_sequences(users=np.arange(inter.n_users))
    params = {**FAST, "generators": [{"model": "popularity", "top_n": 60}], "learner": learner}
    ranker = Ranker(**params).fit(train, catalog)
    pop = ranker.generators.models[0]
    tiers = item_tiers(inter)
    user_tier = tier[np.array([int(x[1:]) for x in inter.user_map.ids])]

    def in_tier(model) -> float:
        idx, _ = model.recommend(hist, k=5)
        return float((tiers[idx] == user_tier[:, None]).mean())

    # the generator alone is as good as chance (a third); the ranker puts the shopper's price tier first
    assert in_tier(pop) < 0.5
    assert in_tier(ranker) > 0.9


def test_no_label_leakage():
    """The features of the label window are the same whatever happens after its start: shuffled or removed."""
    inter, catalog, _ = price_tiers(n_users=90)
    train = inter.subset(inter.timestamp < 90 * DAY)
    params = {**FAST, "generators": [{"model": "trending", "top_n": 30}, {"model": "itemknn", "top_n": 30}],
              "label_items": "all", "label_windows": 1}
    a = Ranker(**params)
    a.item_map = train.item_map
    X, users, seen = a.training_examples(train, catalog)
    cut = a.label_cuts(train)[0]
    after = np.flatnonzero(train.timestamp >= cut)
    rng = np.random.default_rng(1)
    item, ts = train.item.copy(), train.timestamp.copy()
    item[after] = rng.permutation(item[after])  # other items, other times, after the cut
    ts[after] = cut + rng.permutation(ts[after] - cut)
    shuffled = Interactions(train.user, item, train.user_map, train.item_map, ts)
    b = Ranker(**params)
    b.item_map = train.item_map
    Xb, users_b, seen_b = b.training_examples(shuffled, catalog)
    np.testing.assert_array_equal(users, users_b)
    np.testing.assert_array_equal(seen, seen_b)
    np.testing.assert_array_equal(X.items, Xb.items)
    np.testing.assert_array_equal(X.X, Xb.X)
    assert not np.array_equal(X.y, Xb.y)  # the labels do move with the events
    # removed: the state fitted on the events before the cut alone featurises the same shoppers identically
    c = Ranker(**params)
    c.item_map = train.item_map
    c._fit_state(train.subset(train.timestamp < cut), catalog)
    _, Xc = c._featurise(train.subset(train.timestamp < cut).to_sequences(users=users))
    np.testing.assert_array_equal(X.X, Xc)


@pytest.mark.parametrize("params, field", [
    ({"generators": [{"model": "nope"}]}, "generators.0.model"),
    ({"generators": [{"model": "trending", "top_n": 0}]}, "generators.0.top_n"),
    ({"generators": [{"model": "ease", "top_n": -5}]}, "generators.0.top_n"),
    ({"generators": [{"model": "ranker"}]}, "generators.0.model"),
    ({"generators": [{"model": "ease", "params": {"l3": 1}}]}, "l3"),
    ({"generators": []}, "generators"),
    ({"bag": 0}, "bag"),
    ({"session": {"bag": 0}}, "session.bag"),
    ({"session": {"learner": "auto"}}, "session.learner"),
])
def test_bad_configs_name_the_field(params, field):
    with pytest.raises(DeepshelfError, match=field.replace(".", r"\.")):
        Ranker(**params)


@pytest.mark.parametrize("learner, bag", [("lightgbm", 1), ("torch", 1), ("ensemble", 1), ("torch", 3),
                                         ("lightgbm", 2), ("ensemble", 2)])
def test_save_load_batch_single_and_reasons(learner, bag, tmp_path):
    from deepshelf.models.ranker.learners import BaggedLearner

    inter, catalog, _ = price_tiers(n_users=120)
    train = inter.subset(inter.timestamp < 90 * DAY)
    params = {**FAST, "learner": learner, "bag": bag, "label_windows": 2,
              "generators": [{"model": "trending", "top_n": 15}, {"model": "itemknn", "top_n": 15},
                             {"model": "buyagain", "top_n": 5}]}
    model = Ranker(**params).fit(train, catalog)
    # repeated items, an empty history and one newer than the training end
    h = Histories.from_lists([[3, 5, 3, 7], [], [10, 11, 10], [20]],
                             timestamps=[[0, DAY, 2 * DAY, 3 * DAY], [], [5 * DAY, 6 * DAY, 7 * DAY], [100 * DAY]])
    s = model.score(h)
    assert s.shape == (4, inter.n_items) and s.dtype == np.float32 and np.isfinite(s).all()
    single = np.vstack([model.score(h.select([b])) for b in range(4)])
    np.testing.assert_allclose(s, single, rtol=1e-5, atol=1e-5)
    # candidates outrank every other item
    cand = model.generators.candidates(h, model.n_items)
    is_cand = np.zeros_like(s, bool)
    is_cand[cand.rows, cand.items] = True
    for b in range(4):
        assert s[b][is_cand[b]].min() > s[b][~is_cand[b]].max()
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert type(loaded) is Ranker and loaded.learner.name == learner
    members = loaded.learner.members.values() if learner == "ensemble" else [loaded.learner]
    assert all(isinstance(m, BaggedLearner) and len(m.members) == bag if bag > 1 else
               not isinstance(m, BaggedLearner) for m in members)
    np.testing.assert_array_equal(loaded.score(h), s)
    assert loaded.feature_importances == model.feature_importances
    idx, _ = model.recommend(h, k=5, exclude_seen=False)
    reasons = model.reasons(h, idx)
    assert reasons.shape == (4, 5)
    seen = np.zeros_like(s, bool)
    seen[np.repeat(np.arange(4), h.lengths), h.items] = True
    assert ((reasons == "bought_before") == seen[np.arange(4)[:, None], idx]).all()
    assert set(reasons.ravel()) <= {"bought_before", "trending", "also_bought", "popular"}
    assert model.reasons(h, np.full((4, 2), -1)).tolist() == [["", ""]] * 4


def test_text_similarity_feature(tmp_path):
    """With `text`, the similarity of an item's title to the shopper's last items is a feature, saved with the model."""
    inter, catalog, _ = price_tiers(n_users=60)
    words = ["garden hose", "red lipstick", "coffee beans"]
    titles = [f"{words[i // 20]} {i}" for i in range(60)]
    catalog = Catalog(catalog.table.with_columns(pl.Series("title", titles)))
    train = inter.subset(inter.timestamp < 90 * DAY)
    params = {**FAST, "learner": "lightgbm", "text": True, "cache_dir": str(tmp_path / "cache"),
              "generators": [{"model": "popularity", "top_n": 60}]}
    model = Ranker(**params).fit(train, catalog)
    h = Histories.from_lists([inter.item_map.lookup(np.array(["i0", "i1"])).tolist()])  # two garden hoses
    cand, X = model._featurise(h)
    text = X[:, model.feature_names.index("text_last5")]
    same = np.array([int(inter.item_map.ids[i][1:]) // 20 == 0 for i in cand.items])
    assert text[same].min() > text[~same].max()
    model.save(tmp_path / "m")
    np.testing.assert_array_equal(Recommender.load(tmp_path / "m").score(h), model.score(h))


def test_auto_learner_chosen_on_validation_and_kept_for_the_refit():
    """Under learner = "auto" with a validation at hand, the learner the validation prefers is kept, and the
    refit is told to repeat that choice."""
    from deepshelf.data.splits import EvalSet
    from deepshelf.models.base import Validation

    inter, catalog, _ = price_tiers(n_users=90)
    train = inter.subset(inter.timestamp < 90 * DAY)
    users = np.arange(3)
    evalset = EvalSet(users, train.to_sequences(users=users), Histories.from_lists([[0], [1], [2]]))
    prefer = {"lightgbm": 0.2, "torch": 0.7}
    seen = []

    def measure(model, cases):
        seen.append(model.learner.name)
        return prefer[model.learner.name]

    params = {**FAST, "generators": [{"model": "trending", "top_n": 30}]}
    model = Ranker(**params).fit(train, catalog, Validation(evalset, measure))
    assert sorted(seen) == ["lightgbm", "torch"]  # the ensemble only when named (it costs both's time)
    assert model.learner.name == "torch" and model.learner_quality == prefer
    assert model.refit_overrides() == {"learner": "torch"}
    prefer.update(lightgbm=0.9)
    assert Ranker(**params).fit(train, catalog, Validation(evalset, measure)).refit_overrides() == {
        "learner": "lightgbm"}


def test_negative_sampling_keeps_every_positive_and_at_most_n_negatives():
    from deepshelf.models.ranker.learners import RankData
    from deepshelf.models.ranker.learners import sample_negatives

    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 40, 50)
    y = (rng.random(sizes.sum()) < 0.2).astype(np.float32)
    data = RankData(np.arange(len(y), dtype=np.float32)[:, None], y, sizes, np.arange(len(y)))
    kept = sample_negatives(data, 5, rng)
    group = np.repeat(np.arange(50), sizes)
    kept_rows = kept.X[:, 0].astype(np.int64)
    assert np.all(np.diff(kept_rows) > 0)  # groups stay contiguous, in order
    assert set(np.flatnonzero(y > 0)) <= set(kept_rows)
    negatives = np.bincount(group[kept_rows], weights=y[kept_rows] == 0, minlength=50)
    all_negatives = np.bincount(group, weights=y == 0, minlength=50)
    np.testing.assert_array_equal(negatives, np.minimum(all_negatives, 5))
    np.testing.assert_array_equal(kept.sizes, np.bincount(group[kept_rows], minlength=50))


def test_label_windows_limited_by_the_data_span():
    inter, _, _ = price_tiers(n_users=30)
    train = inter.subset(inter.timestamp < 90 * DAY)  # ~90 days: two 40-day windows fit, not a third
    cuts = Ranker(label_days=40, label_windows=3).label_cuts(train)
    assert len(cuts) == 2 and cuts[0] - cuts[1] == 40 * DAY
    with pytest.raises(DeepshelfError, match="label_days"):
        Ranker(label_days=100).label_cuts(train)


def staples(n_users: int = 150, seed: int = 0) -> tuple[Interactions, Catalog, np.ndarray]:
    """The price tiers, plus one staple per shopper (items s0-s9) bought again every ten days from day 5.

    A repeat purchase is always the staple, never one of the shopper's other items: only a model of the shopper's
    own items (how often, how lately) can put it first when seen items are allowed.
    """
    inter, catalog, _ = price_tiers(n_users, seed)
    staple = np.random.default_rng(seed + 1).integers(0, 10, n_users)
    days = np.arange(5, 120, 10)
    users = np.concatenate([inter.user_map.ids[inter.user], np.repeat([f"u{u}" for u in range(n_users)], len(days))])
    items = np.concatenate([inter.item_map.ids[inter.item], np.repeat([f"s{s}" for s in staple], len(days))])
    times = np.concatenate([inter.timestamp, np.tile(days * DAY, n_users)])
    out = Interactions.from_ids(users, items, timestamp=times)
    ids = [f"s{s}" for s in range(10)]
    catalog = Catalog(pl.concat([catalog.table, pl.DataFrame({"item": ids, "title": ids, "price": [5.0] * 10})],
                                how="diagonal"))
    return out, catalog, out.item_map.lookup(np.array([f"s{s}" for s in staple]))


def test_buy_again_model_puts_the_repeat_purchase_first_and_leaves_discovery_alone(tmp_path):
    inter, catalog, staple = staples()
    train = inter.subset(inter.timestamp < 90 * DAY)
    hist = train.to_sequences(users=np.arange(inter.n_users))
    params = {**FAST, "learner": "lightgbm", "label_windows": 2,
              "generators": [{"model": "popularity", "top_n": 40}, {"model": "buyagain", "top_n": 5}]}
    split = Ranker(**params).fit(train, catalog)
    assert split.repeat is not None and split.calibration[0] > 0
    # buy again (seen items allowed): the staple first for (nearly) every shopper
    first, _ = split.recommend(hist, k=1, exclude_seen=False)
    assert (first[:, 0] == staple).mean() > 0.9
    # discovery: exactly the ranking of the learner trained on new items alone
    alone = Ranker(**{**params, "label_items": "new"}).fit(train, catalog)
    assert alone.repeat is None
    np.testing.assert_array_equal(split.recommend(hist, k=10)[0], alone.recommend(hist, k=10)[0])
    first_alone, _ = alone.recommend(hist, k=1, exclude_seen=False)
    assert (first_alone[:, 0] == staple).mean() < 0.5
    # saved and loaded with both models
    split.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.calibration == split.calibration
    np.testing.assert_array_equal(loaded.score(hist), split.score(hist))


def test_shop_stats_prices_come_from_the_sales_up_to_their_time():
    """A label window's features see the prices of the sales before its start, even when handed a catalogue that
    knows later ones (its sales say what was known when); a product not sold by then has no price."""
    from deepshelf.data.datasets import dataset_from_sales
    from deepshelf.models.ranker.features import ShopStats

    lines = pl.DataFrame({"user": ["u", "v", "u", "v"], "item": ["a", "a", "a", "b"],
                          "timestamp": [0, DAY, 10 * DAY, 11 * DAY], "invoice": ["1", "2", "3", "4"],
                          "title": ["A", "A", "A", "B"], "price": [1.0, 3.0, 50.0, 7.0]})
    ds = dataset_from_sales("lines", lines)
    past = ds.interactions.subset(ds.interactions.timestamp < 5 * DAY)
    a, b = (ds.interactions.item_map.index(i) for i in "ab")
    stats = ShopStats.build(past, ds.catalog)
    assert stats.price[a] == 2.0 and np.isnan(stats.price[b])
    assert ShopStats.build(ds.interactions, ds.catalog).price[a] == 3.0  # up to the newest sale


def rank_groups(n_groups: int = 300, seed: int = 0):
    """Groups of 20 candidates with 3 features; an item is bought (about one per group) more often the larger its
    first feature, the others are noise."""
    from deepshelf.models.ranker.learners import RankData

    rng = np.random.default_rng(seed)
    sizes = np.full(n_groups, 20)
    X = rng.normal(size=(sizes.sum(), 3)).astype(np.float32)
    y = (X[:, 0] + rng.normal(scale=0.7, size=len(X)) > 1.8).astype(np.float32)
    return RankData(X, y, sizes, rng.integers(0, 50, len(X)))


@pytest.mark.parametrize("name", ["torch", "lightgbm"])
def test_a_bag_scores_the_mean_of_its_members_standardised(name):
    """A bag of N: member 0 is the single learner (same seed, same negatives), the others learn with their own
    seeds and negatives, and the bag's score is the mean of the members' scores standardised over the held-out
    candidates; it ranks the planted feature as its members do."""
    from deepshelf.models.ranker.learners import BaggedLearner, grouped_ndcg, sample_negatives, train_learner
    from deepshelf.models.ranker.model import RankerConfig

    cfg = RankerConfig(**FAST)
    train, held = rank_groups(), rank_groups(80, seed=1)
    draws = []

    def draw(i):
        draws.append(i)
        return sample_negatives(train, 8, np.random.default_rng(cfg.seed + i)), held

    names = ["a", "b", "c"]
    single = train_learner(name, cfg, draw, held, names, 50)
    bag = train_learner(name, cfg, draw, held, names, 50, bag=3)
    assert isinstance(bag, BaggedLearner) and bag.name == name and len(bag.members) == 3
    assert draws == [0, 0, 1, 2]  # each member its own negatives, the first the single learner's
    assert [m.cfg.seed for m in bag.members] == [cfg.seed, cfg.seed + 1, cfg.seed + 2]
    test = rank_groups(50, seed=2)
    np.testing.assert_allclose(bag.members[0].predict(test.X, test.items), single.predict(test.X, test.items),
                               rtol=1e-6, atol=1e-6)
    member_scores = [m.predict(test.X, test.items).astype(np.float64) for m in bag.members]
    assert not np.allclose(member_scores[0], member_scores[1])  # other seeds, other members
    standardised = []
    for m, s in zip(bag.members, member_scores):
        on_held = m.predict(held.X, held.items).astype(np.float64)
        standardised.append((s - on_held.mean()) / on_held.std())
    np.testing.assert_allclose(bag.predict(test.X, test.items), np.mean(standardised, axis=0), rtol=1e-5, atol=1e-5)
    on_held = bag.predict(held.X, held.items)
    assert abs(on_held.mean()) < 1e-4 and abs(on_held.std() - 1) < 0.2  # members standardised on held
    assert grouped_ndcg(bag.predict(test.X, test.items), test.y, test.sizes) > \
        grouped_ndcg(-test.X[:, 0], test.y, test.sizes) + 0.2
