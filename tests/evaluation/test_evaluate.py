"""evaluate() on hand-computed cases: the buy-again view (seen items allowed) and the new-item target slice."""

import math
from dataclasses import replace

import numpy as np
import pytest

from deepshelf.data.interactions import Histories, Interactions
from deepshelf.data.splits import EvalSet, temporal
from deepshelf.evaluation.evaluate import evaluate, recommend_all
from deepshelf.models.popularity import Popularity

DAY = 86400


def popularity_over(counts: list[int]) -> Popularity:
    """A popularity model over items 0..n-1 whose item i has counts[i] events: ranking = descending counts."""
    items = np.repeat(np.arange(len(counts)), counts)
    inter = Interactions.from_ids(np.arange(len(items)).astype(str), items.astype(str))
    assert list(inter.item_map.ids) == [str(i) for i in range(len(counts))]
    return Popularity().fit(inter)


def test_a_repeat_purchase_is_a_hit_only_when_seen_items_are_allowed():
    # train (before day 70): A bought 3 times, B twice, C once; in the test period u1 buys A again and C
    events = [("u1", "A", 1), ("u2", "A", 2), ("u3", "A", 3), ("u2", "B", 4), ("u3", "B", 5), ("u3", "C", 6),
              ("u1", "A", 80), ("u1", "C", 81), ("u9", "B", 100)]
    users, items, days = zip(*events)
    inter = Interactions.from_ids(np.array(users), np.array(items), timestamp=np.array(days) * DAY)
    split = temporal(inter, test_days=30, valid_days=30)
    model = Popularity().fit(split.before_test)
    A, B, C = inter.item_map.lookup(["A", "B", "C"])
    row = int(np.flatnonzero(split.test_again.users == inter.user_map.lookup(["u1"])[0])[0])

    again = evaluate(model, split.test_again.select(np.array([row])), ks=(2,))
    assert again.ranked[0].tolist() == [A, B] and not again.exclude_seen
    # targets {A, C}: A (seen, bought again) at rank 1 -> HR 1, recall 1/2, NDCG 1 / (1 + 1/log2 3)
    assert again.metrics["hr@2"] == 1.0 and again.metrics["recall@2"] == pytest.approx(0.5)
    assert again.metrics["ndcg@2"] == pytest.approx(1 / (1 + 1 / math.log2(3)))

    # the same targets with seen items excluded: A cannot be recommended, so only C (rank 2) can hit
    excluded = replace(split.test_again.select(np.array([row])), exclude_seen=True)
    masked = evaluate(model, excluded, ks=(2,))
    assert A not in masked.ranked[0] and masked.ranked[0].tolist() == [B, C]
    assert masked.metrics["ndcg@2"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    # and the discovery view has no repeat targets at all: u1's only target there is C
    disc = split.test.select(np.flatnonzero(split.test.users == inter.user_map.lookup(["u1"])[0]))
    assert disc.targets.items.tolist() == [C] and evaluate(model, disc, ks=(2,)).ranked[0].tolist() == [B, C]


def test_recommend_all_follows_the_evalset():
    model = popularity_over([5, 4, 3, 2])
    inputs = Histories.from_lists([[0, 1], [3]])
    targets = Histories.from_lists([[0], [2]])
    seen_allowed = recommend_all(model, EvalSet(np.arange(2), inputs, targets, exclude_seen=False), k=2)[0]
    seen_excluded = recommend_all(model, EvalSet(np.arange(2), inputs, targets), k=2)[0]
    assert seen_allowed.tolist() == [[0, 1], [0, 1]]
    assert seen_excluded.tolist() == [[2, 3], [0, 1]]


def test_new_item_slice_counts_only_new_item_targets():
    model = popularity_over([6, 5, 4, 3, 2, 1])  # ranking for everyone: 0 1 2 3 4 5, minus their seen items
    inputs = Histories.from_lists([[0], [5], [1]])
    targets = Histories.from_lists([[1, 4], [2, 3], [0]])
    new_item = np.array([False, True, True, True, False])  # per target: a: 4 is new; b: 2 and 3; c: none
    es = EvalSet(np.arange(3), inputs, targets, {"first_two": np.array([True, True, False])},
                 target_slices={"new_items": new_item})
    result = evaluate(model, es, ks=(3,))
    # top 3: a -> 1 2 3 (new target 4 missed); b -> 0 1 2 (new target 2 at rank 3, 3 missed); c -> 0 2 3
    assert result.ranked.tolist() == [[1, 2, 3], [0, 1, 2], [0, 2, 3]]
    sliced = result.slices["new_items"]
    assert sliced["users"] == 2 and sliced["targets"] == 3  # c has no new-item target
    assert sliced["hr@3"] == pytest.approx(0.5)
    assert sliced["recall@3"] == pytest.approx((0 + 1 / 2) / 2)
    assert sliced["ndcg@3"] == pytest.approx((0 + (1 / math.log2(4)) / (1 + 1 / math.log2(3))) / 2)
    # a user slice keeps all its users' targets: a and b, 4 targets, both hit
    assert result.slices["first_two"]["users"] == 2 and result.slices["first_two"]["targets"] == 4
    assert result.slices["first_two"]["hr@3"] == 1.0
    # over all targets a hits 1 at rank 1: the slice is not the overall metric
    assert result.metrics["hr@3"] == pytest.approx(1.0)


def test_evidence_is_a_prefix_and_metrics_still_rank_the_padding():
    from deepshelf.evaluation.evaluate import with_evidence

    ranked = np.array([[3, 1, 0, 2], [2, 0, -1, -1], [1, 0, 3, 2]])
    scores = np.array([[0.9, 0.0, 0.0, -0.2], [0.5, 0.1, -np.inf, -np.inf], [0.0, 0.0, 0.0, 0.0]], np.float32)
    assert with_evidence(ranked, scores).tolist() == [[True, False, False, False], [True, True, False, False],
                                                      [False, False, False, False]]
    # a shopper whose only evidence is for item 1: items 0 and 2 score 0 and still fill the evaluated top 3, so a
    # target among them is a hit for the metrics (the export, not the evaluation, stops at the evidence)
    model = popularity_over([1, 5, 1, 1])
    model.item_popularity = np.array([0.0, 1.0, 0.0, 0.0], np.float32)
    cases = EvalSet(np.arange(1), Histories.from_lists([[3]]), Histories.from_lists([[0]]))
    result = evaluate(model, cases, ks=(3,))
    assert result.ranked[0, 0] == 1 and 0 in result.ranked[0] and result.metrics["hr@3"] == 1.0
    assert with_evidence(result.ranked, result.scores)[0].tolist() == [True, False, False]
