"""Between fits the ranker follows the shop's sales since its fit (`Ranker.follow_sales`): its item statistics and
popularity generators equal a rebuild at that time, and a product that starts selling after the fit is ranked by
those sales, after a save/load too, batched as one at a time."""

import numpy as np
import pytest

from deepshelf.data.interactions import Histories, Interactions
from deepshelf.models.base import FollowsSales, Recommender
from deepshelf.models.popularity import Popularity, Trending
from deepshelf.models.ranker.features import ITEM_FEATURES, WINDOWS, ShopStats
from deepshelf.models.ranker.model import Ranker

DAY = 86400
FAST = {"lgbm_trees": 60, "lgbm_min_leaf": 5, "patience_trees": 20, "copurchase_neighbors": 20, "holdout": 0.25}


def random_shop(seed: int = 0, n: int = 3000) -> Interactions:
    """100 days of sales of 80 products, and 5 products that sell only in the last 15 days."""
    rng = np.random.default_rng(seed)
    users = np.array([f"u{u}" for u in rng.integers(0, 200, n + 50)])
    items = np.array([f"i{i}" for i in rng.zipf(1.5, n) % 80] + [f"late{i}" for i in rng.integers(0, 5, 50)])
    times = np.concatenate([rng.uniform(0, 100 * DAY, n), rng.uniform(85 * DAY, 100 * DAY, 50)])
    return Interactions.from_ids(users, items, timestamp=times.astype(np.int64))


def test_shop_stats_advanced_equal_a_rebuild_at_that_time():
    inter = random_shop()
    cut = 80 * DAY
    before, after = inter.subset(inter.timestamp < cut), inter.subset(inter.timestamp >= cut)
    stats = ShopStats.build(before, None)
    recent = before.timestamp > before.timestamp.max() - max(WINDOWS) * DAY
    now = float(inter.timestamp.max())
    live = stats.advanced(before.item[recent], before.timestamp[recent], after.item, after.timestamp, now)
    rebuilt = ShopStats.build(inter, None)
    assert live.now[0] == rebuilt.now[0]
    buyers = ITEM_FEATURES.index("buyers")
    others = [c for c in range(len(ITEM_FEATURES)) if c != buyers]
    np.testing.assert_allclose(live.item[:, others], rebuilt.item[:, others], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(live.item[:, buyers], stats.item[:, buyers])  # as built: said so
    # a product first sold after the cut has an age and sales; one never sold has neither
    first_after = np.setdiff1d(after.item, before.item)
    assert len(first_after) and np.isfinite(live.item[first_after, ITEM_FEATURES.index("age_days")]).all()
    assert np.isnan(stats.item[first_after, ITEM_FEATURES.index("age_days")]).all()


@pytest.mark.parametrize("cls, params", [(Trending, {}), (Popularity, {}), (Trending, {"use_weights": True}),
                                         (Trending, {"half_life_days": 2.0})])
def test_popularity_follows_sales_as_a_refit_would(cls, params, tmp_path):
    inter = random_shop(1)
    inter = Interactions(inter.user, inter.item, inter.user_map, inter.item_map, inter.timestamp, inter.type,
                         np.random.default_rng(2).integers(1, 4, len(inter)).astype(np.float32))
    cut = 90 * DAY
    before, after = inter.subset(inter.timestamp < cut), inter.subset(inter.timestamp >= cut)
    model = cls(**params).fit(before)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    refit = cls(**params).fit(inter).item_popularity
    h = Histories.from_lists([[0], [1, 2]])
    for m in (model, loaded):
        fit_scores = m.score(h)[0].copy()
        m.follow(after.item, after.timestamp, after.weight, float(inter.timestamp.max()))
        np.testing.assert_allclose(m.score(h)[0], refit, rtol=1e-4, atol=1e-6)
        assert not np.allclose(fit_scores, refit, atol=1e-3)  # the sales after the cut changed the scores
        m.follow(after.item[:0], after.timestamp[:0], after.weight[:0], float(inter.timestamp.max()))
        np.testing.assert_array_equal(m.score(h)[0], fit_scores)  # nothing since the fit: the fit's scores


def test_a_windowed_popularity_keeps_its_fit_scores():
    inter = random_shop(3)
    before = inter.subset(inter.timestamp < 90 * DAY)
    model = Popularity(window_days=10).fit(before)
    model.follow(np.array([0, 0, 0]), np.full(3, 95.0 * DAY), np.ones(3), 95.0 * DAY)
    np.testing.assert_array_equal(model.score(Histories.from_lists([[1]]))[0], model.item_popularity)


def hot_shop(n_users: int = 200, seed: int = 0) -> Interactions:
    """40 products over 120 days; every 10 days four of them are the hot ones, and each shopper buys two products
    per period, mostly hot ones: what sold in the last days says what sells next. Product i39 never sells."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for period in range(12):
        hot = rng.choice(39, 4, replace=False)
        for u in range(n_users):
            for _ in range(2):
                item = rng.choice(hot) if rng.random() < 0.8 else rng.integers(0, 39)
                users.append(f"u{u}")
                items.append(f"i{item}")
                times.append(int((period * 10 + rng.uniform(0, 10)) * DAY))
    users.append("u0")
    items.append("i39")  # in the item map; its one sale is far back, so it is not trending at the fit
    times.append(0)
    return Interactions.from_ids(np.array(users), np.array(items), timestamp=np.array(times))


@pytest.mark.parametrize("learner", ["lightgbm", "torch"])
def test_a_product_selling_after_the_fit_is_ranked_by_those_sales(learner, tmp_path):
    inter = hot_shop()
    params = {**FAST, "learner": learner, "torch_epochs": 6, "torch_groups": 16, "label_days": 5,
              "label_windows": 3, "new_slots": 0, "session": None,
              "generators": [{"model": "trending", "top_n": 8}, {"model": "itemknn", "top_n": 8}]}
    model = Ranker(**params).fit(inter)
    assert isinstance(model, FollowsSales) and model.fit_end == inter.timestamp.max()
    new = inter.item_map.index("i39")
    # after the fit, i39 sells to 60 shoppers within two days
    sold_items = np.full(60, new)
    sold_ts = model.fit_end + np.linspace(0.1, 2.0, 60) * DAY
    now = model.fit_end + 2.1 * DAY
    shoppers = Histories.from_lists([[1, 2], [5], [7, 9, 11], [20]],
                                    timestamps=[[DAY, 2 * DAY], [3 * DAY], [4 * DAY, 5 * DAY, 6 * DAY], [7 * DAY]])

    def rank_of_new(m: Ranker) -> np.ndarray:
        s = m.score(shoppers)
        return (s > s[:, [new]]).sum(axis=1)

    assert (rank_of_new(model) >= 10).all()  # as fit: nothing says it sells
    model.follow_sales(sold_items, sold_ts, np.ones(60), now)
    assert (rank_of_new(model) < 3).all()
    s = model.score(shoppers)
    single = np.vstack([model.score(shoppers.select([b])) for b in range(len(shoppers))])
    np.testing.assert_allclose(s, single, rtol=1e-5, atol=1e-5)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.live is None and (rank_of_new(loaded) >= 10).all()  # what is saved is the fit
    loaded.follow_sales(sold_items, sold_ts, np.ones(60), now)
    np.testing.assert_allclose(loaded.score(shoppers), s, rtol=1e-5, atol=1e-5)
    model.follow_sales(sold_items[:0], sold_ts[:0], np.ones(0), now)
    assert (rank_of_new(model) >= 10).all()
