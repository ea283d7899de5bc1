"""benchmarks/recompute_metrics.py: hand-computed metrics and targets, and agreement with deepshelf's evaluation."""

import math

import numpy as np
import polars as pl
import pytest

from benchmarks import recompute_metrics as rm
from deepshelf.data.datasets import load_dataset
from deepshelf.data.splits import temporal
from deepshelf.evaluation.evaluate import evaluate
from deepshelf.models.popularity import Trending

DAY = 86400


def frame(rows, columns) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=columns, orient="row")


def test_ranking_metrics_hand_computed():
    recs = frame([("a", "1", 1), ("a", "9", 2), ("a", "3", 3), ("b", "5", 1), ("b", "6", 2)],
                 {"user": pl.Utf8, "item": pl.Utf8, "rank": pl.Int64})
    # a: targets {1, 2, 3}, hits at ranks 1 and 3; b: target {6} at rank 2; c: absent from the export
    targets = frame([("a", "1"), ("a", "2"), ("a", "3"), ("b", "6"), ("c", "7")], {"user": pl.Utf8, "item": pl.Utf8})
    got = rm.ranking_metrics(recs, targets, 3)
    ndcg_a = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    ndcg_b = 1 / math.log2(3)
    assert got["users"] == 3 and got["targets"] == 5
    assert got["hr@3"] == pytest.approx(2 / 3)
    assert got["recall@3"] == pytest.approx((2 / 3 + 1) / 3)
    assert got["ndcg@3"] == pytest.approx((ndcg_a + ndcg_b) / 3)
    # at k = 1 only rank 1 counts and the ideal DCG holds one hit
    assert rm.ranking_metrics(recs, targets, 1)["ndcg@1"] == pytest.approx(1 / 3)


def test_period_targets_views_new_items_and_seen_rows():
    events = frame([("u1", "A", 1 * DAY), ("u2", "A", 2 * DAY), ("u1", "A", 80 * DAY), ("u1", "C", 81 * DAY),
                    ("u2", "N", 90 * DAY), ("u3", "D", 50 * DAY), ("u2", "B", 100 * DAY)],
                   {"user": pl.Utf8, "item": pl.Utf8, "timestamp": pl.Int64})

    def pairs(df):
        return sorted(df.select("user", "item").rows())

    disc, history, new = rm.period_targets(events, "test", "discovery")
    assert pairs(disc) == [("u1", "C"), ("u2", "B"), ("u2", "N")]
    assert sorted(new["item"]) == ["B", "C", "N"]  # none of them had an event before day 70
    again, _, _ = rm.period_targets(events, "test", "again")
    assert pairs(again) == [("u1", "A"), ("u1", "C"), ("u2", "B"), ("u2", "N")]
    valid, _, _ = rm.period_targets(events, "valid", "discovery")
    assert pairs(valid) == [("u3", "D")]
    recs = frame([("u1", "A", 1), ("u1", "C", 2), ("u2", "A", 1)], {"user": pl.Utf8, "item": pl.Utf8, "rank": pl.Int64})
    assert rm.seen_rows(recs, history) == {"seen_rows": 2, "users_with_seen": 2}


def test_online_retail_cleaning_equals_the_dataset_loader():
    """The script's own cleaning of the raw UCI file gives exactly the events deepshelf trains on."""
    ours = rm.load_events("online-retail").sort(["user", "item", "timestamp"])
    inter = load_dataset("online-retail").interactions
    theirs = pl.DataFrame({"user": inter.user_map.ids[inter.user].astype(str),
                           "item": inter.item_map.ids[inter.item].astype(str), "timestamp": inter.timestamp})
    assert ours.equals(theirs.sort(["user", "item", "timestamp"]))


def test_temporal_recompute_equals_deepshelf_evaluation(tmp_path):
    """An events file through deepshelf (split, model, evaluate) and through the script: the same numbers."""
    rng = np.random.default_rng(3)
    n = 3000
    user = rng.integers(0, 120, n)
    item = np.minimum(rng.zipf(1.4, n), 60) + user % 3 * 60  # repeats happen: a few items dominate
    day = rng.uniform(0, 200, n)
    kind = rng.choice(["purchase", "view", "search"], n, p=[0.6, 0.3, 0.1])
    path = tmp_path / "events.csv"
    pl.DataFrame({"user_id": [f"u{u}" for u in user], "item_id": [f"p{i}" for i in item],
                  "timestamp": (day * DAY).astype(np.int64) + 1_600_000_000, "type": kind}).write_csv(path)
    inter = load_dataset(str(path)).interactions.with_type_weights()
    inter = inter.subset(inter.weight > 0)  # as the pipeline does: searches count for nothing
    split = temporal(inter)
    model = Trending().fit(split.before_test)
    events = rm.load_events(str(path))
    for view, evalset in (("discovery", split.test), ("again", split.test_again)):
        result = evaluate(model, evalset, ks=(10,))
        ok = result.ranked >= 0
        recs = pl.DataFrame({"user": np.repeat(inter.user_map.ids[evalset.users], ok.sum(1)).astype(str),
                             "item": inter.item_map.ids[result.ranked[ok]].astype(str),
                             "rank": np.broadcast_to(np.arange(1, 11), ok.shape)[ok]})
        again = rm.recompute_temporal(recs, events, "test", view, 10)
        for metric in ("hr@10", "recall@10", "ndcg@10", "users"):
            assert again[metric] == pytest.approx(result.metrics[metric], abs=1e-12), (view, metric)
        assert again["new_items"]["users"] == result.slices.get("new_items", {}).get("users", 0)
        assert again["exported_users_not_evaluated"] == 0 and again["evaluated_users_missing_from_export"] == 0
        if view == "discovery":
            assert again["seen_rows"] == 0
        else:
            assert again["seen_rows"] > 0  # trending repeats best sellers a shopper already bought


def test_leave_one_out_mode_still_reads_sequences(tmp_path):
    seqs = tmp_path / "seqs.txt"
    seqs.write_text("a 1 2 3 4\nb 5 6 7\nc 1 2\n")
    recs = tmp_path / "recs.csv"
    recs.write_text("user_id,item_id,rank,score\na,9,1,1.0\na,4,2,0.5\nb,7,1,1.0\n")
    targets = rm.load_targets(str(seqs), 0, "test")
    assert targets == {"a": "4", "b": "7"}
    got = rm.recompute(str(recs), targets, 10)
    assert got["hr@10"] == 1.0 and got["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1) / 2)
