"""Buy again: frequency x recency over the shopper's own history, checked against hand-computed scores."""

import numpy as np

from deepshelf.data.interactions import Histories, Interactions
from deepshelf.models.buyagain import BuyAgain
from deepshelf.models.base import Recommender

DAY = 86400


def fitted(**params) -> BuyAgain:
    # items 0..5; item 0 the most popular (3 events), item 1 two, the rest one
    inter = Interactions.from_ids(np.array(["a", "b", "c", "a", "b", "c", "d", "e", "f"]),
                                  np.array(["0", "0", "0", "1", "1", "2", "3", "4", "5"]))
    return BuyAgain(**params).fit(inter)


def test_timestamped_scores_by_hand(tmp_path):
    model = fitted(half_life_days=30)
    # item 3 bought 60 and 30 days before the newest event, item 5 at the newest event
    h = Histories.from_lists([[3, 3, 5]], timestamps=[[0, 30 * DAY, 60 * DAY]])
    s = model.score(h)[0]
    assert s.dtype == np.float32
    np.testing.assert_allclose(s[3], 1 + 0.25 + 0.5, rtol=1e-6)  # 2^-2 + 2^-1
    np.testing.assert_allclose(s[5], 1 + 1.0, rtol=1e-6)
    # every other item: half its popularity (item 0 is the most popular: 0.5)
    np.testing.assert_allclose(s[[0, 1, 2, 4]], 0.5 * model.item_popularity[[0, 1, 2, 4]], rtol=1e-6)
    idx, _ = model.recommend(h, k=3, exclude_seen=False)
    assert idx[0].tolist() == [5, 3, 0]
    model.save(tmp_path / "m")
    np.testing.assert_array_equal(Recommender.load(tmp_path / "m").score(h), model.score(h))


def test_positions_when_no_timestamps_and_rows_independent():
    model = fitted(half_life_events=1)
    h = Histories.from_lists([[3, 3, 5], [], [2]])
    s = model.score(h)
    np.testing.assert_allclose(s[0, 3], 1 + 0.25 + 0.5, rtol=1e-6)  # 2 and 1 positions before the newest
    np.testing.assert_allclose(s[0, 5], 2.0, rtol=1e-6)
    np.testing.assert_allclose(s[1], 0.5 * model.item_popularity, rtol=1e-6)  # empty history: popularity
    np.testing.assert_allclose(s[2, 2], 2.0, rtol=1e-6)
    single = np.vstack([model.score(h.select([b])) for b in range(3)])
    np.testing.assert_array_equal(single, s)
