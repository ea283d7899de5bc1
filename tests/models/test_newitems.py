"""New products: the text generator finds the new products of a shopper's own kind, and the ranker's exploration
puts the best new candidate into its reserved place (and nowhere when it has none), batch == one at a time."""

import numpy as np
import polars as pl
import pytest

from deepshelf.data.catalog import Catalog
from deepshelf.data.idmap import IdMap
from deepshelf.data.interactions import Histories, Interactions
from deepshelf.models.newitems import NewItems, new_item_mask
from deepshelf.models.ranker.model import Ranker

DAY = 86400
WORDS = ["running shoes", "red lipstick", "garden hose", "coffee beans"]
PER_GROUP, NEW_PER_GROUP = 20, 4  # the last 4 products of each group are listed but have never sold


def shop(n_users: int = 160, seed: int = 0) -> tuple[Interactions, Catalog]:
    """Shoppers of group g buy only the old products of group g over 120 days; the catalogue also lists new
    products of every group, never sold (they are in the id map, as a catalogue read as of the cut puts them)."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(n_users):
        g = u % len(WORDS)
        for i in rng.choice(PER_GROUP - NEW_PER_GROUP, size=6, replace=False):
            users.append(f"u{u}")
            items.append(f"i{g * PER_GROUP + i}")
            times.append(int(rng.uniform(0, 120) * DAY))
    ids = [f"i{i}" for i in range(len(WORDS) * PER_GROUP)]
    inter = Interactions.from_ids(np.array(users), np.array(items), timestamp=np.array(times),
                                  item_map=IdMap.from_values(np.array(ids))[0])
    titles = [f"{WORDS[i // PER_GROUP]} style {i}" for i in range(len(ids))]
    return inter, Catalog(pl.DataFrame({"item": ids, "title": titles}))


def group(ids) -> np.ndarray:
    return np.array([int(str(x)[1:]) // PER_GROUP for x in ids])


def is_planted_new(ids) -> np.ndarray:
    return np.array([int(str(x)[1:]) % PER_GROUP >= PER_GROUP - NEW_PER_GROUP for x in ids])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    inter, catalog = shop()
    return inter, catalog, str(tmp_path_factory.mktemp("cache"))


def test_new_item_mask_by_hand():
    inter = Interactions.from_ids(np.array(["a", "a", "b"]), np.array(["x", "y", "y"]),
                                  timestamp=np.array([0, 5 * DAY, 10 * DAY]),
                                  item_map=IdMap.from_values(np.array(["x", "y", "z"]))[0])
    # x first sold 10 days before the newest event, y 5 days before, z never
    assert new_item_mask(inter, 0).tolist() == [False, False, True]
    assert new_item_mask(inter, 5).tolist() == [False, True, True]
    assert new_item_mask(inter, 10).tolist() == [True, True, True]


def test_new_products_of_the_shoppers_kind_come_first(world):
    inter, catalog, cache = world
    model = NewItems(cache_dir=cache).fit(inter, catalog)
    assert model.is_new.tolist() == is_planted_new(model.item_map.ids).tolist()
    hist = inter.to_sequences()
    idx, _ = model.recommend(hist, k=NEW_PER_GROUP)
    users = inter.user_map.ids
    user_group = np.array([int(u[1:]) % len(WORDS) for u in users])
    ids = model.item_map.ids[idx]
    assert is_planted_new(ids.ravel()).all()  # only new products before any old one
    assert (group(ids.ravel()).reshape(idx.shape) == user_group[:, None]).mean() > 0.95


def test_without_a_catalogue_new_products_still_lead_and_tie():
    inter, _ = shop()
    model = NewItems().fit(inter, None)
    s = model.score(inter.to_sequences().select(np.arange(3)))
    assert (s[:, model.is_new] == 0).all() and (s[:, ~model.is_new] < 0).all()


FAST = {"lgbm_trees": 40, "lgbm_min_leaf": 5, "patience_trees": 10, "copurchase_neighbors": 20, "holdout": 0.25,
        "learner": "lightgbm", "label_items": "new", "label_days": 30, "label_windows": 1,
        "generators": [{"model": "popularity", "top_n": 20}, {"model": "newitems", "top_n": 8}]}


@pytest.mark.parametrize("learned", [True, False])
def test_exploration_reserves_a_place_for_the_best_new_candidate(world, tmp_path, learned):
    """Whether the learner also ranks the new candidates (`learned`) or they only feed the exploration share."""
    inter, catalog, cache = world
    params = {**FAST, "generators": [FAST["generators"][0], {**FAST["generators"][1], "learned": learned,
                                                                "params": {"cache_dir": cache}}]}
    explore = Ranker(**params, new_slots=1, new_slot_rank=3).fit(inter, catalog)
    assert any(f.startswith("newitems") for f in explore.feature_names) == learned
    hist = inter.to_sequences()
    idx, _ = explore.recommend(hist, k=3)
    explore.config.new_slots = 0  # the same learner without exploration
    plain_idx, _ = explore.recommend(hist, k=3)
    explore.config.new_slots = 1
    new = is_planted_new(explore.item_map.ids)
    # never sold, so the learner (trained on old products' sales) leaves them out almost always; exploration puts
    # one new product in every top 3, of the shopper's kind
    plain_has = new[plain_idx].any(axis=1)
    assert plain_has.mean() < 0.05
    assert (new[idx].sum(axis=1)[~plain_has] == 1).all() and new[idx].any(axis=1).all()
    user_group = np.array([int(u[1:]) % len(WORDS) for u in inter.user_map.ids])
    rows, cols = np.nonzero(new[idx])
    assert (group(explore.item_map.ids[idx[rows, cols]]) == user_group[rows]).mean() > 0.95
    # the new product takes an old one's place: the old products left are the learner's own, best first
    for b in np.flatnonzero(~plain_has):
        kept = idx[b][~new[idx[b]]]
        assert set(kept) <= set(plain_idx[b]) and len(kept) == 2
    # its reason says it is new
    reasons = explore.reasons(hist, idx)
    assert set(reasons[new[idx]]) == {"new"}
    # one at a time == batched, and a save/load round trip scores the same
    for b in (0, 7, 31):
        one, _ = explore.recommend(hist.select(np.array([b])), k=3)
        assert (one[0] == idx[b]).all()
    explore.save(tmp_path / "m")
    loaded = type(explore).load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score(hist), explore.score(hist))


def test_no_new_product_no_change(world):
    """Without new products (all sold), exploration leaves every score as the learner made it."""
    inter, catalog, cache = world
    sold = inter.subset(~is_planted_new(inter.item_map.ids[inter.item]))
    old_only = Interactions.from_ids(sold.user_map.ids[sold.user], sold.item_map.ids[sold.item],
                                     timestamp=sold.timestamp)
    FAST["generators"][1]["params"] = {"cache_dir": cache}
    a = Ranker(**FAST).fit(old_only, catalog)
    b = Ranker(**FAST, new_slots=2, new_slot_rank=3).fit(old_only, catalog)
    hist = old_only.to_sequences()
    np.testing.assert_array_equal(a.score(hist), b.score(hist))


def test_lift_new_by_hand():
    """Old items 0-3 score 4..1, new items 4-6 far below; three places in the top 4: the new items go above the old
    item at place 1, best match first, and item 4, offered twice, takes one place (item 6 gets the third)."""
    from deepshelf.models.ranker.explore import lift_new

    out = np.array([[4.0, 3.0, 2.0, 1.0, -5.0, -6.0, -7.0]])
    new = np.array([False, False, False, False, True, True, True])
    hist = Histories.from_lists([[]])
    lift_new(out, hist, new, np.zeros(4, np.int64), np.array([4, 5, 4, 6]), np.array([0.9, 0.8, 0.7, 0.5]), 3, 4)
    assert np.argsort(-out[0]).tolist()[:5] == [0, 4, 5, 6, 1]
