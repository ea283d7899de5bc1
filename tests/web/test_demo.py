"""`deepshelf demo`'s building blocks without a browser: choosing the served run, reusing runs, the serving
folder and its link, seeding the store once."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import polars as pl
import pytest

from deepshelf.apps import demo
from deepshelf.data.catalog import Catalog
from deepshelf.data.datasets import Dataset
from deepshelf.data.interactions import Interactions
from deepshelf.errors import DeepshelfError


def run(name: str, valid_ndcg: float, tmp_path=None) -> demo.TrainedRun:
    metrics = {"model": name, "valid": {"metrics": {"ndcg@10": valid_ndcg}}, "test": {"metrics": {"ndcg@10": 0.5}}}
    return demo.TrainedRun(name, (tmp_path or demo.Path("/nonexistent")) / name, metrics, reused=False)


def test_serving_run_is_best_on_validation_among_history_aware_models():
    runs = [run("trending", 0.09), run("itemknn", 0.05), run("ease", 0.06), run("content", 0.07), run("als", 0.055)]
    assert demo.choose_serving(runs).name == "ease"  # trending and content are never served as "for you"
    assert demo.choose_serving([run("popularity", 0.01)]).name == "popularity"  # nothing else: serve what exists
    with pytest.raises(DeepshelfError):
        demo.choose_serving([])


def test_demo_models_leave_out_what_is_switched_off():
    models = demo.demo_models(include_sequential=False, include_content=False)
    assert list(models) == ["popularity", "trending", "itemknn", "ease", "als", "ranker"]
    assert list(demo.demo_models()) == [*models, "sasrec", "content"]
    assert list(demo.demo_models(include_sequential=False)) == [*models, "content"]


def test_second_build_reuses_runs_and_retrains_a_changed_config(demo_build):
    from deepshelf.runs.config import TrainConfig

    paths, _ = demo_build  # built by the same train_models() call moments ago
    runs_dir = paths.runs_dir
    versions = {n: json.loads((runs_dir / n / "metrics.json").read_text())["version"] for n in ("popularity", "itemknn")}
    again = demo.train_models("online-retail", runs_dir, {"popularity": {}, "itemknn": {}})
    assert all(r.reused for r in again)
    assert {r.name: r.metrics["version"] for r in again} == versions
    changed = TrainConfig(dataset="online-retail", model="popularity", params={"seed": 7}).model_dump(mode="json")
    assert not demo._same_config(runs_dir / "popularity", changed)  # a changed parameter is trained again


def test_serving_folder_attaches_the_content_run_and_current_moves_atomically(demo_build, tmp_path):
    """The served run is given a copy of the content run's indexes as RUN/content (no hidden pairing folder),
    kept when it already has them; `current` moves in one step and old `.serve-*` folders go."""
    from deepshelf.content.similar import SimilarIndex
    from deepshelf.runs.artifacts import content_dir, load_run, model_item_ids

    paths, _ = demo_build
    trained = []
    for name in ("popularity", "itemknn"):  # copies: the shared build's `current` link must not move
        shutil.copytree(paths.runs_dir / name, tmp_path / name)
        trained.append(demo.TrainedRun(name, tmp_path / name, json.loads((tmp_path / name / "metrics.json").read_text()),
                                       reused=True))
    content = tmp_path / "content-run" / "model" / "content"  # where a content model's run keeps its indexes
    ids = model_item_ids(trained[0].path)[:3]
    SimilarIndex(ids, {"text": np.eye(3, dtype=np.float32)}, {"text": np.ones(3, bool)}).save(content)
    (tmp_path / ".serve-popularity+content").mkdir()  # left by an older demo build
    folder = demo.serving_folder(tmp_path, trained[0], content)
    assert folder == trained[0].path and content_dir(folder) == folder / "content"
    assert SimilarIndex.load(folder).item_ids.tolist() == ids.tolist()
    stamp = (folder / "content").stat().st_ino
    assert demo.serving_folder(tmp_path, trained[0], content) == folder
    assert (folder / "content").stat().st_ino == stamp  # the same indexes: kept as they are
    link = demo.link_current(tmp_path, folder)
    assert load_run(link).version == trained[0].metrics["version"]
    assert not list(tmp_path.glob(".serve-*"))
    link = demo.link_current(tmp_path, demo.serving_folder(tmp_path, trained[1], None))
    assert load_run(link).config.model == "itemknn" and content_dir(link) is None
    assert not list(tmp_path.glob(".current.*")) and not list(tmp_path.glob("*/.content.*"))


def small_shop() -> Dataset:
    users = np.array(["a", "a", "b", "b", "b", "c"])
    items = np.array(["x", "y", "x", "z", "y", "z"])
    ts = np.array([1_000, 2_000, 3_000, 4_000, 5_000, 6_000])
    inter = Interactions.from_ids(users, items, timestamp=ts)
    catalog = Catalog(pl.DataFrame({"item": ["x", "y", "z"], "title": ["Red mug", "Blue mug", "Tea pot"],
                                    "price": [2.5, 2.5, None]}))
    return Dataset("small", inter, catalog, timestamped=True)


def test_seed_store_once_replaying_history_up_to_now(tmp_path):
    from deepshelf.storage import open_store

    url = f"sqlite:///{tmp_path / 'store.db'}"
    before = time.time()
    counts = demo.seed_store(url, small_shop())
    assert counts == {"items": 3, "events": 6}
    assert demo.seed_store(url, small_shop()) == counts  # a second run adds nothing
    store = open_store(url)
    try:
        history = store.history("b", 10)
        assert [e.item_id for e in history] == ["y", "z", "x"]  # newest first, order kept
        gaps = -np.diff([e.ts for e in history])
        assert np.allclose(gaps, 1_000)  # gaps kept
        assert before - 120 <= history[0].ts + 1_000 <= time.time()  # the shop's last event (c at 6000): ~now
        assert store.get_item("x").title == "Red mug" and store.get_item("z").price is None
    finally:
        store.close()


def test_demo_shoppers_have_readable_histories():
    shoppers = demo.demo_shoppers(small_shop(), n=5, min_events=2, max_events=3)
    assert shoppers == ["b", "a"]  # most recently active first; c has one event only


def test_unknown_demo_dataset_is_a_clear_error():
    from typer.testing import CliRunner

    from deepshelf.cli.main import _register_command_groups, app

    _register_command_groups()
    result = CliRunner().invoke(app, ["demo", "--dataset", "nope", "--no-serve"])
    assert result.exit_code != 0
    assert "expected online-retail or fashion" in str(result.exception or result.output)
