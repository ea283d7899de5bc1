"""Training runs: event-type weights from the config reach the models; bad weights are refused."""

import json

import numpy as np
import polars as pl
import pytest

from deepshelf.errors import DeepshelfError
from deepshelf.runs.artifacts import load_run
from deepshelf.runs.config import build_train_config
from deepshelf.runs.pipeline import train_run


def events_file(tmp_path):
    rows = ["user,item,type,timestamp"]
    # item "imp" is only ever shown (impressions), "viewed" only viewed, "bought" bought by fewer shoppers
    for u in range(30):
        rows.append(f"u{u},imp,impression,{1000 + u}")
        rows.append(f"u{u},viewed,view,{2000 + u}")
        rows.append(f"u{u},other{u % 5},view,{3000 + u}")
    for u in range(12):
        rows.append(f"u{u},bought,purchase,{4000 + u}")
    for u in range(30):  # the last two events of everyone are held out (validation, test): unique fillers
        rows.append(f"u{u},tail_a{u},view,{9000 + u}")
        rows.append(f"u{u},tail_b{u},view,{9100 + u}")
    path = tmp_path / "events.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_event_weights_shape_popularity(tmp_path):
    path = events_file(tmp_path)
    cfg = build_train_config(str(path), "popularity", None, ["use_weights=true", "protocol=leave-one-out"])
    run = load_run(train_run(cfg, tmp_path / "default"))
    ranked = list(run.model.item_map.ids[run.model.item_popularity.argsort()[::-1]])
    assert "imp" not in ranked[:3]  # impressions weigh 0 by default: never counted as preference
    assert run.model.item_popularity[run.model.item_map.index("imp")] == 0
    # 12 purchases x 4 outweigh 30 views x 1; with purchases weighted 1 the order flips
    assert ranked.index("bought") < ranked.index("viewed")
    cfg = build_train_config(str(path), "popularity", None,
                             ["use_weights=true", "protocol=leave-one-out", "event_weights={purchase=1.0}"])
    run = load_run(train_run(cfg, tmp_path / "flat"))
    ranked = list(run.model.item_map.ids[run.model.item_popularity.argsort()[::-1]])
    assert ranked.index("viewed") < ranked.index("bought")
    assert json.loads((tmp_path / "flat" / "config.json").read_text())["event_weights"] == {"purchase": 1.0}


def test_bad_event_weights_refused(tmp_path):
    with pytest.raises(DeepshelfError, match="event_weights"):
        build_train_config("ml-1m", "ease", None, ["event_weights={like=2.0}"])


def test_overwriting_a_run_never_leaves_its_folder_missing(tmp_path):
    """`write_run` over an existing run swaps the folders in one step: a reader polling the run's config.json
    while the run is replaced again and again always finds one (the old run or the new)."""
    import threading

    from deepshelf.runs.artifacts import write_run
    from deepshelf.runs.config import TrainConfig

    class Saved:  # write_run asks a model only to save itself
        def save(self, path):
            path.mkdir()
            (path / "weights.npz").write_bytes(b"0" * 1000)

    model = Saved()
    cfg = TrainConfig(dataset="tiny", model="popularity")
    out = tmp_path / "run"
    write_run(out, cfg, model, {"version": "0"})
    done, missing, reads = threading.Event(), [], [0]

    def reader():
        while not done.is_set():
            try:
                (out / "config.json").read_bytes()
                reads[0] += 1
            except FileNotFoundError:
                missing.append(reads[0])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(1, 150):
            write_run(out, cfg, model, {"version": str(n)})
    finally:
        done.set()
        thread.join()
    assert reads[0] > 0 and missing == []
    assert json.loads((out / "metrics.json").read_text())["version"] == "149"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary or old folders left behind
    assert not (out / "content").exists()  # servers find content indexes via runs.artifacts.content_dir


def test_run_artifacts_do_not_import_the_pipeline():
    """Serving imports runs.artifacts: loading a run must not drag in training, evaluation or reports."""
    import subprocess
    import sys

    code = ("import sys, deepshelf.runs.artifacts; print(' '.join(m for m in sys.modules if m.startswith(("
            "'deepshelf.evaluation', 'deepshelf.data.loaders', 'deepshelf.data.datasets', 'deepshelf.runs.pipeline', 'deepshelf.training', 'matplotlib', 'torch'))))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == []


# ---- the shop protocol: choose on validation, refit before the test period ------------------------------------
DAY = 86400
T0 = 1_600_000_000


def shop_events(tmp_path, seed=0):
    """A shop's export: 60 days of purchases over 100 products (a few popular ones), then a validation period
    (days 60-70) where product "late" is launched and bought by the even shoppers, and a test period (days
    70-80) where the odd shoppers buy it, and everyone buys again one of their first products.

    Returns (events.csv, catalog.csv)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, 101)
    rows = ["user,item,type,timestamp"]
    for u in range(80):
        for i in rng.choice(100, size=10, replace=False, p=weights / weights.sum()):
            rows.append(f"u{u},p{i},purchase,{T0 + int(rng.uniform(0, 60) * DAY)}")
        late_day = rng.uniform(61, 69) if u % 2 == 0 else rng.uniform(71, 79)
        rows.append(f"u{u},late,purchase,{T0 + int(late_day * DAY)}")
        rows.append(f"u{u},{rows[-2].split(',')[1]},purchase,{T0 + int(rng.uniform(70.5, 79) * DAY)}")
    rows.append(f"u0,p0,view,{T0 + 80 * DAY}")  # the newest event: the test period is days 70-80
    events = tmp_path / "events.csv"
    events.write_text("\n".join(rows) + "\n")
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("item_id,title\n" + "".join(f"p{i},Product {i}\n" for i in range(100)) + "late,Late\n")
    return events, catalog


def shop_config(events, catalog, model="popularity", *sets):
    cfg = build_train_config(str(events), model, None, ["test_days=10", "valid_days=10", *sets])
    cfg.catalog = str(catalog)
    return cfg


def test_refit_protocol_the_saved_model_has_seen_the_validation_period(tmp_path):
    from deepshelf.evaluation.evaluate import evaluate
    from deepshelf.runs.artifacts import load_valid_model
    from deepshelf.runs.pipeline import eval_split_of, view_model

    events, catalog = shop_events(tmp_path)
    run = load_run(train_run(shop_config(events, catalog), tmp_path / "run"))
    first = load_valid_model(run.path)
    late = run.model.item_map.index("late")
    # "late" was only bought in the validation period before the test cut: the served model knows it, the first
    # fit (training events only) does not
    assert first.item_popularity[late] == 0
    assert (run.model.item_popularity > run.model.item_popularity[late]).sum() < 10  # in the refit's top 10
    ds, split, _ = eval_split_of(run, "test")
    assert run.model.item_popularity.tolist() == pytest.approx(
        (split.before_test.item_popularity() / split.before_test.item_popularity().max()).tolist())
    assert view_model(run, "valid") is not run.model and view_model(run, "test") is run.model

    m = run.metrics
    # both fits recorded: the validation numbers and choice, the refit, test before and after the refit
    assert {"valid", "valid_again", "test", "test_again", "chosen", "refit", "before_refit"} <= set(m)
    assert m["refit"]["train_events"] == len(split.before_test) > m["train_events"] == len(split.train)
    assert m["refit"]["overrides"] == {} and m["refit"]["train_seconds"] >= 0
    assert set(m["before_refit"]) == {"test", "test_again"}
    popularity = split.train.item_popularity()
    for name in ("test", "test_again"):  # test numbers of the saved model; before_refit of the first fit
        assert m[name]["metrics"] == pytest.approx(evaluate(run.model, getattr(split, name), (10, 20),
                                                            popularity).metrics)
        assert m["before_refit"][name]["metrics"] == pytest.approx(
            evaluate(first, getattr(split, name), (10, 20), popularity).metrics)
    assert m["valid"]["metrics"] == pytest.approx(evaluate(first, split.valid, (10, 20), popularity).metrics)
    # the odd shoppers' test target "late" is found only after the refit
    before, after = m["before_refit"]["test"]["metrics"]["hr@10"], m["test"]["metrics"]["hr@10"]
    assert before < 0.5 and after == 1.0
    report = (run.path / "report.md").read_text()
    assert "Chosen on validation, then refit" in report and "before refit" in report


def test_refit_can_be_turned_off(tmp_path):
    events, catalog = shop_events(tmp_path)
    run = load_run(train_run(shop_config(events, catalog, "popularity", "refit=false"), tmp_path / "run"))
    assert "refit" not in run.metrics and "before_refit" not in run.metrics and "chosen" not in run.metrics
    assert not (run.path / "valid_model").exists()
    assert run.model.item_popularity[run.model.item_map.index("late")] == 0  # trained before validation only


def test_search_chooses_on_validation_and_refits_the_choice(tmp_path):
    events, catalog = shop_events(tmp_path)
    cfg = shop_config(events, catalog, "ease", "search.l2=[1.0,1000000.0]")
    run = load_run(train_run(cfg, tmp_path / "run"))
    chosen = run.metrics["chosen"]
    scores = {s["params"]["l2"]: s["valid_ndcg@10"] for s in chosen["search"]}
    assert set(scores) == {1.0, 1000000.0}
    best = max(scores, key=scores.get)
    assert chosen["params"]["l2"] == best == run.model.config.l2
    assert run.metrics["valid"]["metrics"]["ndcg@10"] == pytest.approx(scores[best], abs=1e-6)
    assert run.metrics["refit"]["params"]["l2"] == best


def test_refit_keeps_what_the_first_fit_chose():
    """The refit builds its model from the chosen parameters plus the fitted model's refit_overrides()."""
    from deepshelf.data.interactions import Interactions
    from deepshelf.models.ease import EASE
    from deepshelf.models.sasrec import SASRec
    from deepshelf.runs.config import TrainConfig
    from deepshelf.runs.protocol import Fitted, refit

    class Chosen(EASE):
        def refit_overrides(self):
            return {"l2": 7.0}

    events = Interactions.from_ids(["a", "a", "b", "b", "c"], ["x", "y", "x", "z", "y"], timestamp=np.arange(5))
    refitted = refit(TrainConfig(dataset="d", model="ease"), Fitted(Chosen(l2=3.0), {"l2": 3.0}, 0.0), events, None)
    assert isinstance(refitted.model, EASE) and refitted.model.config.l2 == 7.0
    assert refitted.overrides == {"l2": 7.0} and refitted.params == {"l2": 7.0}
    # SASRec keeps the epoch with the best validation NDCG@10 (the weights its fit kept), nothing without one
    sasrec = SASRec()
    sasrec.training_log = [{"epoch": 1, "valid_ndcg@10": 0.1}, {"epoch": 2, "valid_ndcg@10": 0.3},
                           {"epoch": 3, "valid_ndcg@10": 0.2}, {"epoch": 4}]
    assert sasrec.refit_overrides() == {"epochs": 2}
    sasrec.training_log = [{"epoch": 1, "loss": 1.0}]
    assert sasrec.refit_overrides() == {}


def test_leave_one_out_runs_are_not_refit(tmp_path):
    """Sequence data keeps its protocol: one fit on the training events, tested and saved; the same numbers as
    that fit evaluated directly, and no refit records."""
    from deepshelf.evaluation.evaluate import evaluate, validation
    from deepshelf.models.itemknn import ItemKNN
    from deepshelf.runs.pipeline import eval_split_of

    rng = np.random.default_rng(1)
    lines = []
    for u in range(120):
        start = rng.integers(0, 40)
        lines.append(" ".join([f"user{u}", *[f"item{(start + j) % 40}" for j in range(rng.integers(4, 10))]]))
    path = tmp_path / "walks.txt"
    path.write_text("\n".join(lines) + "\n")
    run = load_run(train_run(build_train_config(str(path), "itemknn", None, ["neighbors=10"]), tmp_path / "run"))
    assert run.metrics["protocol"] == "leave-one-out"
    assert not {"refit", "before_refit", "chosen", "valid_again", "test_again"} & set(run.metrics)
    assert not (run.path / "valid_model").exists()
    _, split, _ = eval_split_of(run, "test")
    direct = ItemKNN(neighbors=10).fit(split.train, None, validation(split.valid))
    for name in ("valid", "test"):
        assert run.metrics[name]["metrics"] == pytest.approx(
            evaluate(direct, getattr(split, name), (10, 20), split.train.item_popularity()).metrics)
    with pytest.raises(DeepshelfError, match="no buy-again view"):
        eval_split_of(run, "test_again")


# ---- the catalogue as of each fit's cut ---------------------------------------------------------------------
RANKER_SETS = ["learner=lightgbm", "label_days=10", "label_windows=2", "threads=1", "lgbm_trees=60",
               "lgbm_min_leaf=5", "patience_trees=20", "copurchase_neighbors=20", "holdout=0.25", "content=false"]


def shop_sales(seed=0):
    """A shop's order lines with prices (user, item, timestamp, invoice, title, price) over 80 days: 120 shoppers,
    40 products whose prices rise over time (quantity discounts on some lines), product "mid" first sold in the
    validation period (days 60-70), "late" first sold in the test period (days 70-80)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, 41)
    rows = []
    for u in range(120):
        for i in rng.choice(40, size=12, replace=False, p=weights / weights.sum()):
            day = rng.uniform(0, 79.5)
            rows.append((f"u{u}", f"p{i}", day, 1 + i % 7 * 2.0))
        if u % 3 == 0:
            rows.append((f"u{u}", "mid", rng.uniform(61, 79.5), 4.0))
        if u % 4 == 1:
            rows.append((f"u{u}", "late", rng.uniform(71, 79.5), 6.0))
    rows.append(("u0", "p0", 80.0, 1.0))  # the newest line: the test period is days 70-80
    user, item, day, base = zip(*rows)
    day = np.array(day)
    price = np.round(np.array(base) * (1 + day / 40) * rng.choice([1.0, 0.85], len(day)), 2)
    lines = pl.DataFrame({"user": user, "item": item, "timestamp": (T0 + day * DAY).astype(np.int64),
                          "invoice": [f"{u}-{int(d)}" for u, d in zip(user, day)],
                          "title": [f"PRODUCT {i.upper()}" for i in item], "price": price})
    return lines.sort("timestamp")


def changed_after(lines, cut, new_product, renamed, seed=1):
    """`lines` with every line from `cut` on at another price, `renamed` retitled from then on, and two more
    sales (at a new price, before the last line) of `new_product`, never sold before the cut."""
    assert lines.filter((pl.col("item") == new_product) & (pl.col("timestamp") < cut)).is_empty()
    first = lines.filter(pl.col("item") == new_product)["timestamp"].min()
    more = pl.DataFrame({"user": ["u2", "u7"], "item": [new_product] * 2, "timestamp": [first + 3600, first + 7200],
                         "invoice": ["x1", "x2"], "title": [f"PRODUCT {new_product.upper()}"] * 2,
                         "price": [99.0, 97.5]})
    factor = np.random.default_rng(seed).uniform(0.5, 3.0, lines.height)
    after = pl.col("timestamp") >= cut
    return pl.concat([lines.with_columns(
        pl.when(after).then(pl.col("price") * pl.Series(factor)).otherwise("price").alias("price"),
        pl.when(after & (pl.col("item") == renamed)).then(pl.lit("RENAMED")).otherwise("title").alias("title"),
    ), more]).sort("timestamp")


def same_ranking_inputs(a, b, histories):
    """The ranker's candidates, features and scores for `histories` are bit for bit the same under `a` and `b`."""
    (ca, Xa), (cb, Xb) = a._featurise(histories), b._featurise(histories)
    for name in ("rows", "items", "scores", "zscores", "ranks"):
        assert np.array_equal(getattr(ca, name), getattr(cb, name)), name
    differ = ~((Xa == Xb) | (np.isnan(Xa) & np.isnan(Xb)))
    assert not differ.any(), f"features differ: {sorted({a.feature_names[j] for j in np.nonzero(differ)[1]})}"
    assert np.array_equal(a.score(histories), b.score(histories))


def test_rows_after_a_cut_change_no_feature_candidate_or_score_of_a_fit_before_it(tmp_path, monkeypatch):
    """The ranker trained through the pipeline on events and a catalogue from the same order lines: changing only
    lines after a cut (prices, a product's name, later sales of a product not sold before it) changes nothing the
    fit before that cut computes, for the refit (test cut) and for the validation fit (validation cut)."""
    import deepshelf.runs.pipeline as pipeline
    from deepshelf.data.datasets import dataset_from_sales
    from deepshelf.runs.artifacts import load_valid_model

    def train(lines, name, *sets):
        monkeypatch.setattr(pipeline, "load_source", lambda *_: dataset_from_sales("sales", lines))
        cfg = build_train_config("sales", "ranker", None, ["test_days=10", "valid_days=10", *RANKER_SETS, *sets])
        return load_run(train_run(cfg, tmp_path / name)), pipeline.load_source(), cfg

    lines = shop_sales()
    base, ds, cfg = train(lines, "base")
    split = pipeline.split_dataset(ds, cfg)
    assert split.test_cut == T0 + 70 * DAY and split.valid_cut == T0 + 60 * DAY

    # after the test cut: the refit and the validation fit are the same
    test_changed, ds_t, _ = train(changed_after(lines, split.test_cut, "late", "p0"), "test_changed")
    split_t = pipeline.split_dataset(ds_t, cfg)
    assert ds_t.interactions.item_map == ds.interactions.item_map and len(ds_t.interactions) > len(ds.interactions)
    for mine, theirs in zip(pipeline.fit_catalogs(ds, split), pipeline.fit_catalogs(ds_t, split_t)):
        assert mine.table.equals(theirs.table)  # titles and prices as of each cut
    assert ds.catalog.table["price"].to_list() != ds_t.catalog.table["price"].to_list()  # the whole file's differ
    same_ranking_inputs(base.model, test_changed.model, split.test.inputs)
    same_ranking_inputs(load_valid_model(base.path), load_valid_model(test_changed.path), split.valid.inputs)
    for view in ("valid", "valid_again"):
        assert {k: base.metrics[view][k] for k in ("metrics", "slices")} == {
            k: test_changed.metrics[view][k] for k in ("metrics", "slices")}
    assert base.metrics["test"]["metrics"] != test_changed.metrics["test"]["metrics"]  # "late" sold to more shoppers: other targets

    # after the validation cut: the validation fit (saved as is when not refit) is the same
    valid_changed, _, _ = train(changed_after(lines, split.valid_cut, "mid", "p1"), "valid_changed", "refit=false")
    same_ranking_inputs(load_valid_model(base.path), valid_changed.model, split.valid.inputs)


def test_shipped_configs_validate(tmp_path):
    """Every config in configs/ passes the checks `deepshelf train --config` runs before loading data, generator
    parameters included (a misspelt parameter in the ranker's session part fails here, not an hour into a fit)."""
    from pathlib import Path

    configs = sorted((Path(__file__).parents[1] / "configs").glob("*.toml"))
    assert configs
    for path in configs:
        cfg = build_train_config(None, None, path, [])
        assert cfg.model and cfg.dataset, path
    ranker = next(p for p in configs if p.name == "ranker-online-retail.toml").read_text()
    assert 'model = "sasrec-content"' in ranker  # the session part's deep generator (chosen on validation)
    bad = tmp_path / "bad.toml"
    bad.write_text(ranker.replace("epochs = 10, dim = 64", "epochs = 10, dims = 64"))
    with pytest.raises(DeepshelfError, match="sasrec-content.*dims"):
        build_train_config(None, None, bad, [])
