"""Replay evaluation, as served (apps/replay.py): per-day targets on a hand-computed case; a product that starts
selling mid-period, which the frozen protocol cannot recommend and the engine's live trending can (planted); the
engine's one-shopper-at-a-time lists equal a batched `recommend()` over the same day's histories."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from deepshelf.apps.replay import (ENGINE_TRENDING, Contender, ReplayConfig, day_bounds, day_targets, replay,
                                   replay_data, replay_run, summarise)
from deepshelf.data.interactions import Interactions
from deepshelf.runs.artifacts import load_run
from deepshelf.runs.config import build_train_config
from deepshelf.runs.pipeline import train_run

DAY = 86400
T0 = 1_609_459_200  # 2021-01-01 00:00 UTC


# ---- per-day targets, by hand ------------------------------------------------------------------------------
def test_day_targets_by_hand():
    noon = T0 + 10 * DAY + 12 * 3600  # the cut: day 0 is its afternoon, day 1 the next calendar day, ...
    rows = [  # (user, item, time)
        ("u1", "a", noon - 3 * DAY),          # before the cut: u1 has seen a
        ("u1", "a", noon + 3600),             # day 0: a again (seen: no target)
        ("u1", "b", noon + 7200),             # day 0: b, new to u1 and to the shop -> target
        ("u1", "b", noon + DAY),              # day 1: b again (seen on day 0: no target)
        ("u1", "c", noon + DAY + 60),         # day 1: c -> target
        ("u2", "a", noon + DAY),              # day 1: a twice -> one target
        ("u2", "a", noon + DAY + 5),
        ("u2", "d", noon + DAY + 10),         # day 1: d, first sold by anyone today -> new today
        ("u3", "c", noon + 2 * DAY),          # day 2: c, first sold on day 1 -> new product, not new today
        ("u3", "x", noon + 2 * DAY + 10),     # day 2 (the newest event: the test period is 2.5 days here)
    ]
    inter = Interactions.from_ids([r[0] for r in rows], [r[1] for r in rows], timestamp=[r[2] for r in rows])
    cut = noon
    bounds = day_bounds(cut, noon + 2 * DAY + 10)
    assert bounds.tolist() == [noon, T0 + 11 * DAY, T0 + 12 * DAY, noon + 2 * DAY + 11]
    t = day_targets(inter, cut)
    uid, iid = inter.user_map.ids, inter.item_map.ids
    got = [(int(d), uid[u], sorted(iid[t.targets[p]].tolist())) for p, (d, u) in enumerate(zip(t.days, t.users))]
    assert t.bounds.tolist() == bounds.tolist()
    assert got == [(0, "u1", ["b"]), (1, "u1", ["c"]), (1, "u2", ["a", "d"]), (2, "u3", ["c", "x"])]
    flags = {(int(t.days[p]), uid[t.users[p]], iid[i]): (bool(t.target_slices["new_items"][j]),
                                                         bool(t.target_slices["new_today"][j]))
             for p in range(len(t)) for j, i in zip(range(t.targets.indptr[p], t.targets.indptr[p + 1]),
                                                    t.targets[p])}
    assert flags == {(0, "u1", "b"): (True, True), (1, "u1", "c"): (True, True), (1, "u2", "a"): (False, False),
                     (1, "u2", "d"): (True, True), (2, "u3", "c"): (True, False), (2, "u3", "x"): (True, True)}


def test_summary_by_hand():
    """Two pairs on two days of the same shopper: per pair, per shopper and slice means computed by hand."""
    inter = Interactions.from_ids(["u", "u", "u", "v"], ["a", "b", "c", "a"],
                                  timestamp=[T0, T0 + DAY + 10, T0 + 2 * DAY + 10, T0 + 2 * DAY + 20])
    t = day_targets(inter, T0 + DAY)  # pairs: (day 0, u: [b]), (day 1, u: [c]), (day 1, v: [a])
    a, b, c = (inter.item_map.index(x) for x in "abc")
    ranked = np.array([[b, -1], [a, c], [b, c]])  # hit at 1; hit at 2; miss
    out = summarise(t, ranked, (2,), inter.n_items)
    assert out["pairs"] == 3 and out["shoppers"] == 2
    assert out["metrics"]["hr@2"] == pytest.approx(2 / 3)
    assert out["metrics"]["ndcg@2"] == pytest.approx((1 + 1 / np.log2(3)) / 3)
    # per shopper: u's pairs (1, 1/log2 3) averaged, then with v's 0
    assert out["per_shopper"]["ndcg@2"] == pytest.approx(((1 + 1 / np.log2(3)) / 2 + 0) / 2)
    # new products: b and c were never touched before the cut (a was): pairs 0 and 1
    assert out["slices"]["new_items"]["pairs"] == 2 and out["slices"]["new_items"]["hr@2"] == 1.0
    assert [w["pairs"] for w in out["weeks"]] == [3]


# ---- a planted shop: a product launched in the test period --------------------------------------------------
N_OLD, N_SHOPPERS, NEW_FROM_DAY, NEW_PER_DAY = 40, 100, 32, 10


def planted_shop(tmp_path):
    """40 days of purchases: 100 shoppers buy old products (Zipf popularity), every shopper about every other
    day; product "new1" is listed but first sold on day 32 (test day 2: the cut falls on day 30.5), then to 10
    new shoppers a day, more than any old product but the best few sells. Returns the events CSV."""
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, N_OLD + 1)
    p /= p.sum()
    rows = ["user,item,type,timestamp"]
    for u in range(N_SHOPPERS):
        for day in range(40):
            if rng.random() < 0.5:
                item = rng.choice(N_OLD, p=p)
                rows.append(f"s{u},o{item},purchase,{T0 + day * DAY + 9 * 3600 + int(rng.integers(0, 8 * 3600))}")
    buyers = iter(rng.permutation(N_SHOPPERS).tolist())
    for day in range(NEW_FROM_DAY, 40):
        for _ in range(NEW_PER_DAY):
            rows.append(f"s{next(buyers)},new1,purchase,{T0 + day * DAY + 10 * 3600 + int(rng.integers(0, 3600))}")
    rows.append(f"s0,o0,purchase,{T0 + 40 * DAY + 12 * 3600}")  # the newest event: the cut is day 30, noon
    path = tmp_path / "events.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("replay-shop")
    events = planted_shop(tmp)
    runs = {}
    for model in ("trending", "ease"):
        cfg = build_train_config(str(events), model, None, ["protocol=temporal", "test_days=10", "valid_days=10",
                                                            "content=false"])
        runs[model] = train_run(cfg, tmp / "runs" / model)
    return tmp, runs


def test_a_product_launched_mid_period_is_found_by_replay_only(shop):
    tmp, runs = shop
    # the frozen protocol: model and counts at the cut; the new product is never in anyone's top 10
    frozen = load_run(runs["trending"]).metrics["test"]["slices"]["new_items"]
    assert frozen["users"] >= 50 and frozen["hr@10"] == 0.0
    live = replay_run(runs["trending"], tmp / "live", ks=(10,), as_fit=True)["contenders"]
    still = replay_run(runs["trending"], tmp / "frozen", frozen=True, ks=(10,))["contenders"]
    daily = replay_run(runs["trending"], tmp / "daily", refit_days=1, ks=(10,))["contenders"]
    # replayed with live counts, the engine's trending lists it from the day after its first sales
    assert live[ENGINE_TRENDING]["slices"]["new_items"]["pairs"] >= 50
    assert live[ENGINE_TRENDING]["slices"]["new_items"]["hr@10"] >= 0.7
    # frozen at the cut (store too), nothing finds it; the model frozen at the cut does not either
    assert still[ENGINE_TRENDING]["slices"]["new_items"]["hr@10"] == 0.0
    assert still["trending"]["slices"]["new_items"]["hr@10"] == 0.0
    assert live["trending"]["slices"]["new_items"]["hr@10"] == 0.0 and live["trending"]["refits"] == 0
    # a trending model follows no sales between fits (the ranker does: tests/models/test_ranker_follow.py), so the
    # same run with following off ("as fit") serves the same lists
    assert live["trending (as fit)"]["metrics"] == live["trending"]["metrics"]
    # refit daily, the trending model finds it too (only days with new events refit)
    assert daily["trending"]["refits"] >= 8
    assert daily["trending"]["slices"]["new_items"]["hr@10"] >= 0.7
    # the first day it sells is "new today" for its buyers: nothing built from sales can know it yet
    for result in (live, daily):
        week1 = result[ENGINE_TRENDING]["weeks"][0]
        assert week1["new_items"]["pairs"] > 0
    assert live[ENGINE_TRENDING]["slices"]["new_today"]["hr@10"] == 0.0
    # the same pairs and targets in every mode
    assert live[ENGINE_TRENDING]["pairs"] == still[ENGINE_TRENDING]["pairs"] == daily["trending"]["pairs"]


def test_engine_one_at_a_time_equals_batched_recommend(shop):
    """The lists the replay gets from the engine, one shopper per call, equal the model's batched `recommend()`
    over the same day's histories (with the engine's extras off: no new-item slot, no visit stage, the whole
    history): the replay measures the model, not an artefact of the serving path."""
    tmp, runs = shop
    data = replay_data(runs["ease"])
    settings = {"new_item_slots": 0, "visit_share": 0.0, "max_history": 10_000}
    targets, served = replay(data, [Contender("ease", runs["ease"])], ReplayConfig((10,), settings=settings),
                             tmp / "batched")
    model = load_run(runs["ease"]).model
    ranked = served["ease"].ranked
    compared = 0
    for d in np.unique(targets.days).tolist():
        rows = np.flatnonzero(targets.days == d)
        histories = data.inter.subset(data.inter.timestamp < targets.bounds[d]).to_sequences(users=targets.users[rows])
        assert (histories.lengths > 0).all()
        idx, _ = model.recommend(histories, k=10, exclude_seen=True)
        np.testing.assert_array_equal(ranked[rows], idx)
        compared += len(rows)
    assert compared == len(targets) > 200


def deepshelf(*args):
    return subprocess.run([sys.executable, "-m", "deepshelf", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def test_cli_evaluate_protocol_replay_and_train_set_protocol_replay(shop, tmp_path):
    _, runs = shop
    out = tmp_path / "replay.json"
    res = deepshelf("evaluate", "--run", runs["trending"], "--protocol", "replay", "--k", "10", "--output", out)
    assert res.returncode == 0, res.stderr[-2000:]
    results = json.loads(out.read_text())
    assert set(results["contenders"]) == {"trending", ENGINE_TRENDING}
    assert results["contenders"][ENGINE_TRENDING]["slices"]["new_items"]["hr@10"] > 0
    assert "new products HR@10" in res.stdout and ENGINE_TRENDING in res.stdout
    res = deepshelf("evaluate", "--run", runs["trending"], "--refit-days", "1")
    assert res.returncode == 2 and "--protocol replay" in res.stderr
    events = tmp_path / "events.csv"
    events.write_text(planted_shop(tmp_path).read_text())
    res = deepshelf("train", "--dataset", events, "--model", "popularity", "--out", tmp_path / "pop",
                    "--set", "test_days=10", "--set", "valid_days=10", "--set", "protocol=replay",
                    "--set", "replay_refit_days=2", "--no-content")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "every 2 d" in res.stdout and "pop" in res.stdout
    res = deepshelf("train", "--dataset", events, "--model", "popularity", "--out", tmp_path / "pop2",
                    "--set", "replay_refit_days=2")
    assert res.returncode == 2 and "protocol=replay" in res.stderr
