"""The command line end to end: train -> recommend export -> independent recomputation, and user errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from benchmarks.recompute_metrics import load_events, load_targets, read_recs, recompute, recompute_temporal

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from test_runs import shop_events  # noqa: E402


def deepshelf(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "deepshelf", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    """A small sequences file with structure: users walk forward through a ring of 60 items."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "walks.txt"
    lines = []
    for u in range(300):
        start, length = rng.integers(0, 60), rng.integers(5, 15)
        items = [(start + 2 * j + rng.integers(0, 2)) % 60 for j in range(length)]
        items = list(dict.fromkeys(items))
        lines.append(" ".join(map(str, [f"user{u}", *[f"item{i}" for i in items]])))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_export_and_independent_recompute(sequences, tmp_path):
    run = tmp_path / "runs" / "knn"
    res = deepshelf("train", "--dataset", sequences, "--model", "itemknn", "--set", "neighbors=20", "--out", run)
    assert res.returncode == 0, res.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["protocol"] == "leave-one-out"
    assert (run / "report.md").exists() and (run / "plots" / "by_history_length.png").stat().st_size > 1000
    for which in ("test", "valid"):
        out = tmp_path / f"recs-{which}.csv"
        res = deepshelf("recommend", "--run", run, "--users", which, "--k", 10, "--output", out)
        assert res.returncode == 0, res.stderr
        header = out.read_text().splitlines()[0]
        assert header == "user_id,item_id,rank,score"
        again = recompute(str(out), load_targets(str(sequences), 0, which), 10)
        ours = metrics[which]["metrics"]
        assert again["hr@10"] == pytest.approx(ours["hr@10"], abs=1e-9)
        assert again["ndcg@10"] == pytest.approx(ours["ndcg@10"], abs=1e-9)
    assert ours["hr@10"] > 0.3  # the ring structure is learnable: random guessing gives ~0.17


@pytest.mark.parametrize("args, message", [
    (["train", "--dataset", "nope", "--model", "ease", "--out", "R"], "unknown dataset 'nope'"),
    (["train", "--dataset", "ml-1m", "--model", "nope", "--out", "R"], "unknown model 'nope'"),
    (["train", "--dataset", "ml-1m", "--model", "ease", "--set", "l3=2", "--out", "R"], "unknown parameter 'l3'"),
    (["train", "--dataset", "ml-1m", "--model", "ease", "--set", "l2=abc", "--out", "R"], "parameter 'l2'"),
    (["train", "--dataset", "ml-1m", "--model", "ease", "--set", "protocol=x", "--out", "R"], "'protocol'"),
    (["recommend", "--run", "missing-run", "--output", "x.csv"], "not a deepshelf run"),
])
def test_user_errors_exit_2_with_one_line(tmp_path, args, message):
    res = deepshelf(*args, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr
    # progress lines may come first; the error itself is one line, and the last
    lines = res.stderr.strip().splitlines()
    assert lines[-1].startswith("error:") and sum(line.startswith("error:") for line in lines) == 1
    assert not (tmp_path / "R").exists() and not list(tmp_path.glob(".R*"))


def test_bad_events_file_names_row(tmp_path):
    bad = tmp_path / "events.csv"
    bad.write_text("user,item,timestamp\nu,a,2024-01-01\nu,b,not-a-time\n")
    res = deepshelf("train", "--dataset", bad, "--model", "popularity", "--out", tmp_path / "runs" / "p")
    assert res.returncode == 2 and "line 3, column 'timestamp'" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "runs" / "p").exists()
    assert not [p for p in (tmp_path / "runs").glob("*")] if (tmp_path / "runs").exists() else True


def test_existing_run_is_not_overwritten(sequences, tmp_path):
    run = tmp_path / "r"
    assert deepshelf("train", "--dataset", sequences, "--model", "popularity", "--out", run).returncode == 0
    before = (run / "metrics.json").read_text()
    res = deepshelf("train", "--dataset", sequences, "--model", "ease", "--out", run)
    assert res.returncode == 2 and "already exists" in res.stderr
    assert (run / "metrics.json").read_text() == before


def test_train_from_the_event_store(tmp_path):
    """`deepshelf train --database URL` trains on what a running service has stored."""
    from deepshelf.storage import Event, open_store

    url = f"sqlite:///{tmp_path / 'events.db'}"
    store = open_store(url)
    day = 86400.0
    # 40 shoppers buy along a chain of 8 items over 80 days; the temporal split keeps the last 30 days for test
    store.add_events([Event(f"u{u}", f"i{(u + j) % 8}", "purchase", 1e9 + (u + 10 * j) * day / 5)
                      for u in range(40) for j in range(8)])
    store.close()
    run = tmp_path / "r"
    res = deepshelf("train", "--database", url, "--model", "popularity", "--set", "test_days=5",
                    "--set", "valid_days=5", "--out", run)
    assert res.returncode == 0, res.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["protocol"] == "temporal" and metrics["items"] == 8 and metrics["users"] == 40
    res = deepshelf("train", "--database", url, "--dataset", "ml-1m", "--model", "ease", "--out", tmp_path / "x")
    assert res.returncode == 2 and "either --dataset or --database" in res.stderr


def test_shop_export_by_path_refit_and_views(tmp_path):
    """A shop's own export trained by path with its catalogue: the run is refit before the test period; each view's
    export, recomputed from the raw events by recompute_metrics.py, gives the run's numbers (the test views from
    the saved refit model, the validation views from the first fit); discovery exports hold no seen item, the
    buy-again export does."""
    events, catalog = shop_events(tmp_path)
    run = tmp_path / "runs" / "ease"
    res = deepshelf("train", "--dataset", events, "--catalog", catalog, "--model", "ease", "--set", "l2=50",
                    "--set", "test_days=10", "--set", "valid_days=10", "--out", run)
    assert res.returncode == 0, res.stderr
    assert "before refit" in res.stdout and "refit on" in res.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    # "late", first sold in the validation period, is its new product: the slice in metrics.json, in train's
    # summary and in evaluate's table
    new = metrics["valid"]["slices"]["new_items"]
    assert new["users"] == new["targets"] == 40 and "new_items" not in metrics["test"]["slices"]
    assert "new products (never sold before the cut)" in res.stdout
    res = deepshelf("evaluate", "--run", run, "--users", "valid")
    assert res.returncode == 0, res.stderr
    printed = dict(line.strip("│ ").split("│")[:2] for line in res.stdout.splitlines() if "new_items/" in line)
    printed = {name.strip(): value.strip() for name, value in printed.items()}
    assert printed["new_items/users"] == "40" and printed["new_items/hr@10"] == f"{new['hr@10']:.4f}"
    assert printed["new_items/recall@20"] == f"{new['recall@20']:.4f}"
    assert metrics["refit"]["train_events"] > metrics["train_events"]
    raw = load_events(str(events))
    for which in ("test", "valid", "test_again", "valid_again"):
        out = tmp_path / f"recs-{which}.csv"
        res = deepshelf("recommend", "--run", run, "--users", which, "--k", 10, "--output", out)
        assert res.returncode == 0, res.stderr
        period, view = which.split("_")[0], "again" if which.endswith("_again") else "discovery"
        again = recompute_temporal(read_recs(str(out)), raw, period, view, 10, test_days=10, valid_days=10)
        ours = metrics[which]["metrics"]
        assert again["users"] == ours["users"] and again["evaluated_users_missing_from_export"] == 0
        assert again["hr@10"] == pytest.approx(ours["hr@10"], abs=1e-9)
        assert again["ndcg@10"] == pytest.approx(ours["ndcg@10"], abs=1e-9)
        if view == "discovery":
            assert again["seen_rows"] == 0
        else:
            assert again["seen_rows"] > 0  # buying again: the shopper's own products are allowed, and ranked
    res = deepshelf("recommend", "--run", run, "--users", "later", "--output", tmp_path / "x.csv")
    assert res.returncode == 2 and "expected test, valid, test_again or valid_again" in res.stderr
    # every shopper's list from the saved model: each shopper with an event once, none of their own products
    out = tmp_path / "recs-all.csv"
    res = deepshelf("recommend", "--run", run, "--users", "all", "--k", 5, "--output", out)
    assert res.returncode == 0, res.stderr
    recs = pl.read_csv(out, schema_overrides={"user_id": pl.Utf8, "item_id": pl.Utf8})
    shoppers = pl.read_csv(events, schema_overrides={"user": pl.Utf8, "item": pl.Utf8})
    assert set(recs["user_id"]) == set(shoppers["user"])
    assert recs.group_by("user_id").len()["len"].max() <= 5
    seen = recs.join(shoppers.rename({"user": "user_id", "item": "item_id"}), on=["user_id", "item_id"])
    assert seen.height == 0
