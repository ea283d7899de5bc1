"""Automatic retraining: a new run from the store is promoted (DIR/current re-pointed) only when it is not worse on
the most recent period than the serving one; failed and worse runs leave `current` alone; rollback; the decision
log; a service on DIR/current follows a promotion."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deepshelf.data.idmap import IdMap
from deepshelf.data.interactions import Histories
from deepshelf.data.splits import EvalSet
from deepshelf.errors import DeepshelfError
from deepshelf.runs import retrain as lib
from deepshelf.runs.decisions import current_target, point_current, read_decisions

DAY, T0 = 86400.0, 1_700_000_000.0
SETS = ["test_days=10", "valid_days=10"]


def planted_store(url: str) -> None:
    """160 shoppers in 4 planted groups over 60 days (shoppers of group g touch only the 25 items of group g,
    Zipf-popular within it, ids as the serving tests' shop: i0..i99), so EASE beats popularity on every period."""
    from deepshelf.storage import Event, open_store

    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, 26)
    p /= p.sum()
    events = []
    for g in range(4):
        for u in range(40):
            items = rng.choice(25, size=12, replace=False, p=p) + 25 * g
            days = np.sort(rng.uniform(0, 60, size=12))
            events += [Event(f"u{g}_{u}", f"i{i}", "purchase" if j % 3 == 0 else "view", float(T0 + d * DAY))
                       for j, (i, d) in enumerate(zip(items, days))]
    store = open_store(url)
    store.add_events(events)
    store.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'events.db'}"
    planted_store(url)
    return url


def config(store: str, runs_dir: Path, model: str | None, *sets: str, tolerance: float = 0.02):
    return lib.RetrainConfig(database=store, runs_dir=runs_dir, model=model, overrides=[*SETS, *sets],
                             tolerance=tolerance)


@pytest.fixture(scope="module")
def rounds(tmp_path_factory, store):
    """One runs folder through five rounds: popularity (first run), EASE (better), popularity (worse), no --model
    (EASE again, with the served run's settings), an invalid --set. Returns (runs_dir, decisions, current after
    each round)."""
    runs = tmp_path_factory.mktemp("retrain") / "runs"
    decisions, currents = [], []
    for model, sets in (("popularity", ()), ("ease", ("l2=10",)), ("popularity", ()), (None, ()),
                        ("ease", ("l3=2",))):
        decisions.append(lib.retrain_once(config(store, runs, model, *sets)))
        currents.append(current_target(runs))
    return runs, decisions, currents


def test_first_run_and_a_better_run_are_promoted(rounds):
    runs, (first, better, *_), currents = rounds
    assert first["action"] == "promoted" and first["serving"] is None and currents[0] == first["run"]
    assert better["action"] == "promoted" and better["serving"] == first["run"] and currents[1] == better["run"]
    assert better["model"] == "ease" and (runs / better["run"] / "config.json").exists()
    assert better["new_metrics"]["ndcg@10"] > 1.5 * better["serving_metrics"]["ndcg@10"]
    # the serving run was scored on the same period through the same evaluate(): the numbers the first round
    # recorded for it as the new run
    assert better["serving_metrics"] == first["new_metrics"]
    assert better["period"]["protocol"] == "temporal" and better["period"]["users"] > 50
    assert better["version"] == json.loads((runs / better["run"] / "metrics.json").read_text())["version"]
    assert not os.path.isabs(os.readlink(runs / "current"))  # relative: the runs folder may be moved


def test_a_worse_run_is_refused_and_current_kept(rounds):
    runs, (_, better, worse, *_), currents = rounds
    assert worse["action"] == "refused" and not worse["promoted"] and worse["serving"] == better["run"]
    assert currents[2] == better["run"]
    assert worse["new_metrics"]["ndcg@10"] < worse["serving_metrics"]["ndcg@10"]
    assert "below the serving run's" in worse["reason"]
    assert (runs / worse["run"] / "config.json").exists()  # kept for inspection, not served


def test_without_model_the_served_model_and_its_settings_are_retrained(rounds):
    runs, (_, better, _, again, _), currents = rounds
    cfg = json.loads((runs / again["run"] / "config.json").read_text())
    assert cfg["model"] == "ease" and cfg["params"]["l2"] == 10 and cfg["dataset"].startswith("sqlite:///")
    # same data, same settings: not worse, promoted
    assert again["action"] == "promoted" and currents[3] == again["run"]
    assert again["new_metrics"]["ndcg@10"] == pytest.approx(better["new_metrics"]["ndcg@10"])


def test_an_invalid_setting_fails_and_current_is_untouched(rounds):
    runs, (*_, again, invalid), currents = rounds
    assert invalid["action"] == "failed" and invalid["stage"] == "settings" and invalid["user_error"]
    assert "unknown parameter 'l3'" in invalid["reason"] and invalid["run"] is None
    assert currents[4] == again["run"]


def test_every_decision_is_logged(rounds):
    runs, decisions, _ = rounds
    assert read_decisions(runs) == decisions
    assert [d["action"] for d in decisions] == ["promoted", "promoted", "refused", "promoted", "failed"]
    for d in decisions:
        assert {"time", "run", "serving", "new_metrics", "serving_metrics", "promoted", "reason"} <= d.keys()


def test_rollback_restores_the_previous_promoted_run(rounds, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(rounds[0], runs, symlinks=True)
    promoted = [d["run"] for d in rounds[1] if d["promoted"]]  # popularity, ease, ease again
    assert lib.rollback(runs)["run"] == promoted[1] and current_target(runs) == promoted[1]
    record = lib.rollback(runs)
    assert record["run"] == promoted[0] and record["serving"] == promoted[1] and current_target(runs) == promoted[0]
    with pytest.raises(DeepshelfError, match="no earlier promoted run"):
        lib.rollback(runs)
    assert current_target(runs) == promoted[0]
    assert [d["action"] for d in read_decisions(runs)][-2:] == ["rollback", "rollback"]


def test_cli_invalid_set_exits_2_and_rollback(rounds, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(rounds[0], runs, symlinks=True)
    before = current_target(runs)
    folders = sorted(p.name for p in runs.iterdir())
    res = deepshelf("retrain", "--database", rounds[1][0]["database"], "--runs-dir", runs, "--model", "ease",
                    "--set", "l2=abc", "--once")
    assert res.returncode == 2 and "parameter 'l2'" in res.stderr and "Traceback" not in res.stderr
    assert current_target(runs) == before and sorted(p.name for p in runs.iterdir()) == folders
    assert read_decisions(runs)[-1]["action"] == "failed"
    res = deepshelf("rollback", "--runs-dir", runs)
    assert res.returncode == 0, res.stderr
    assert current_target(runs) == rounds[1][1]["run"] and read_decisions(runs)[-1]["action"] == "rollback"


def test_a_failed_training_is_logged_and_the_loop_goes_on(tmp_path):
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "old").mkdir()
    point_current(runs, "old")
    slept = []
    decisions = lib.retrain_every(config(empty, runs, "popularity"), 3600, rounds=2, sleep=slept.append)
    assert [(d["action"], d["stage"], d["user_error"]) for d in decisions] == [("failed", "training", True)] * 2
    assert "no events" in decisions[0]["reason"] and slept == [3600]
    assert current_target(runs) == "old"
    assert sorted(p.name for p in runs.iterdir() if p.is_dir() and not p.is_symlink()) == ["old"]
    with pytest.raises(DeepshelfError, match="unknown model"):  # settings that fail every round stop the loop
        lib.retrain_every(config(empty, runs, "nope"), 3600, rounds=2, sleep=slept.append)
    assert len(read_decisions(runs)) == 3


def test_tolerance_is_relative_ndcg():
    assert lib.judge(0.49, 0.5, 0.02)[0] and lib.judge(0.5, 0.5, 0.0)[0]
    assert not lib.judge(0.489, 0.5, 0.02)[0] and not lib.judge(0.4999, 0.5, 0.0)[0]
    assert lib.judge(0.1, None, 0.02) == (True, "no serving run to compare with")
    assert lib.parse_interval("6h") == 21600 and lib.parse_interval("90") == 90
    with pytest.raises(DeepshelfError, match="--every"):
        lib.parse_interval("-1h")


def test_evalset_in_another_models_items():
    """A model that does not know an item: dropped from histories, a miss (not dropped) as a target."""
    source, target = IdMap(["a", "b", "c", "d"]), IdMap(["c", "a", "d"])
    es = EvalSet(np.array([0, 1]), Histories.from_lists([[0, 1, 2], [1]]), Histories.from_lists([[3, 1], [2]]))
    out = lib.in_item_space(es, source, target)
    assert [out.inputs[0].tolist(), out.inputs[1].tolist()] == [[1, 0], []]
    assert [out.targets[0].tolist(), out.targets[1].tolist()] == [[2, 3], [0]]
    assert lib.in_item_space(es, source, IdMap(["a", "b", "c", "d"])) is es

    class Fixed:  # ranks c, then d, then a for everyone
        item_map, n_items = target, 3

        def recommend(self, histories, k, exclude_seen=True):
            idx = np.tile(np.array([0, 2, 1])[:k], (len(histories), 1))
            return idx, np.tile(np.array([3.0, 2.0, 1.0], np.float32)[:k], (len(histories), 1))

    metrics = lib.score(Fixed(), es, source)
    # user 0: targets d (rank 2) and b (unknown: a miss): recall 1/2; user 1: target c at rank 1
    assert metrics["recall@10"] == pytest.approx((0.5 + 1.0) / 2)
    ideal = 1 + 1 / np.log2(3)
    assert metrics["ndcg@10"] == pytest.approx(((1 / np.log2(3)) / ideal + 1.0) / 2)


READER = """
import os, sys
link, stop, seen = sys.argv[1], sys.argv[2], set()
open(stop + ".ready", "w").close()
while not os.path.exists(stop):
    try:
        seen.add(os.readlink(link))
    except OSError:
        seen.add("MISSING")
print(" ".join(sorted(seen)))
"""


def test_current_is_never_missing_while_re_pointed(tmp_path):
    """Another process reading `current` while it is re-pointed always finds one of the two runs."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    point_current(tmp_path, "a")
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(tmp_path / "current"), str(stop)],
                              stdout=subprocess.PIPE, text=True)
    while not Path(f"{stop}.ready").exists() and reader.poll() is None:
        time.sleep(0.01)
    for n in range(3000):
        point_current(tmp_path, "ab"[n % 2])
    stop.touch()
    seen = reader.communicate(timeout=60)[0].split()
    assert seen == ["a", "b"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.name != ".retrain.lock"]


def test_a_server_on_current_follows_a_promotion(store, tmp_path):
    """`deepshelf serve --run DIR/current`: a promoted run's model_version is answered within 10 s."""
    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app
    from tests.api.conftest import auth, make_settings

    runs = tmp_path / "runs"
    first = lib.retrain_once(config(store, runs, "popularity"))
    database = f"sqlite:///{tmp_path / 'serving.db'}"
    with TestClient(create_app(make_settings(runs / "current", database))) as client:
        assert client.get("/health").json()["model_version"] == first["version"]
        better = lib.retrain_once(config(store, runs, "ease", "l2=10"))
        assert better["promoted"]
        deadline = time.monotonic() + 10
        while client.get("/health").json()["model_version"] != better["version"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get("/health").json()["model_version"] == better["version"]
        worse = lib.retrain_once(config(store, runs, "popularity"))
        assert not worse["promoted"]
        time.sleep(0.5)  # a few watch intervals (0.2 s): the service keeps answering with the promoted run
        answer = client.get("/health").json()
        assert answer["model_version"] == better["version"]
        # the dashboard's runs answer carries the decision log, oldest first, without server paths
        decisions = client.get("/v1/runs", headers=auth()).json()["decisions"]
        assert [d["action"] for d in decisions] == ["promoted", "promoted", "refused"]
        assert decisions[-1]["version"] == worse["version"] and str(tmp_path) not in json.dumps(decisions)


def deepshelf(*args):
    return subprocess.run([sys.executable, "-m", "deepshelf", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_retrained_runs_keep_search_and_similar_by_text_with_the_new_products(tmp_path):
    """Issue 19: each retrained run gets content indexes built afresh from the store's catalogue, so a server on
    DIR/current keeps answering search and similar-by-text after the swap, products added since included."""
    from contextlib import closing

    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app
    from deepshelf.storage import Item, open_store
    from tests.api.conftest import auth, make_settings
    from tests.test_run_content import group, shop_store

    url = f"sqlite:///{tmp_path / 'shop.db'}"
    shop_store(url)
    runs = tmp_path / "runs"
    first = lib.retrain_once(config(url, runs, "ease", "l2=10"))
    assert first["promoted"] and (runs / first["run"] / "content" / "search.npz").exists()
    query = {"q": "grey cashmere scarf", "k": 5, "in_stock": False}
    with TestClient(create_app(make_settings(runs / "current", url)), headers=auth()) as client:
        before = client.get("/v1/search", params=query).json()
        assert before["source"] == "content" and {group(i["item_id"]) for i in before["items"]} == {2}
        with closing(open_store(url)) as store:  # added to the store directly (a feed import, another server)
            store.upsert_items([Item("NEW-SCARF", title="Grey cashmere scarf")])
        second = lib.retrain_once(config(url, runs, "ease", "l2=10"))
        assert second["promoted"]
        deadline = time.monotonic() + 10
        while client.get("/health").json()["model_version"] != second["version"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get("/health").json()["model_version"] == second["version"]
        after = client.get("/v1/search", params=query).json()
        assert after["source"] == "content" and after["items"][0]["item_id"] == "NEW-SCARF"
        similar = client.get("/v1/items/NEW-SCARF/similar", params={"mode": "text", "k": 5, "in_stock": False})
        assert similar.status_code == 200 and {group(i["item_id"]) for i in similar.json()["items"]} == {2}
