"""The demo serves first (issue 28): the slow models train after the server starts, each swapped in only where
validation prefers it, and `GET /demo/status` says what is still training."""

from __future__ import annotations

import json
import os
import threading
import time

import httpx
import pytest

from deepshelf.apps import demo, demo_training
from tests.conftest import free_port

pytestmark = pytest.mark.slow


def _fake_run(runs_dir, name, params):
    """A finished run folder of `name` with `params`, as train_models() leaves it (config + metrics)."""
    from deepshelf.runs.config import TrainConfig

    path = runs_dir / name
    path.mkdir(parents=True)
    cfg = TrainConfig(dataset="online-retail", model=name, params=params, content=False)
    (path / "config.json").write_text(json.dumps(cfg.model_dump(mode="json")))
    (path / "metrics.json").write_text("{}")


def test_slow_models_wait_for_the_background_unless_already_trained(tmp_path):
    models = demo.demo_models()
    first, later = demo_training.split_models("online-retail", tmp_path, models)
    assert list(later) == ["ranker", "content", "sasrec"]  # the best on validation swaps in first
    assert list(first) == ["popularity", "trending", "itemknn", "ease", "als"]
    _fake_run(tmp_path, "sasrec", models["sasrec"])  # a second `make run`: the trained SASRec serves at once
    first, later = demo_training.split_models("online-retail", tmp_path, models)
    assert list(later) == ["ranker", "content"] and "sasrec" in first
    other = dict(models, sasrec={**models["sasrec"], "epochs": 9})  # a changed config trains again, later
    assert list(demo_training.split_models("online-retail", tmp_path, other)[1]) == ["ranker", "content", "sasrec"]


def test_status_lists_what_is_still_training():
    status = demo_training.TrainingStatus(pending=["sasrec", "content"], serving="ranker")
    assert status.snapshot()["still_training"] == ["sasrec", "content"]
    status.start("sasrec")
    assert status.snapshot()["still_training"] == ["sasrec", "content"]
    status.finish("sasrec", "ranker")
    status.start("content")
    status.finish("content", None, "OSError: disk full")
    snap = status.snapshot()
    assert snap == {"still_training": [], "done": ["sasrec"], "failed": {"content": "OSError: disk full"},
                    "serving": "ranker"}


@pytest.fixture(scope="module")
def served_first(tmp_path_factory):
    """A demo serving popularity (the fast set) with item-kNN left for the background, as `deepshelf demo` wires
    it, its `serve()` replaced by a server thread."""
    from deepshelf.cli import demo as cli_demo

    runs_dir = tmp_path_factory.mktemp("serves-first") / "demo"
    port = free_port()
    started = {}

    def fake_serve(paths, host, port_, api_key, public_key, shoppers, training):
        import uvicorn

        app = demo.make_app(paths, api_key, public_key, shoppers, training)
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port_, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        started.update(server=server, thread=thread, training=training, paths=paths)

    mp = pytest.MonkeyPatch()
    mp.setattr(demo, "demo_models", lambda include_sequential=True, include_content=True:
               {"popularity": {}, "itemknn": {}})
    mp.setattr(demo_training, "SLOW_MODELS", ("itemknn",))
    mp.setattr(demo, "serve", fake_serve)
    mp.setenv("DEEPSHELF_WATCH_INTERVAL_S", "0.2")
    try:
        cli_demo.demo(dataset="online-retail", port=port, host="127.0.0.1", runs_dir=runs_dir, serve=True,
                      sequential=True, content=True, api_key="k", public_key="p")
        yield f"http://127.0.0.1:{port}", started, runs_dir
    finally:
        mp.undo()
        if "server" in started:
            started["server"].should_exit = True
            started["thread"].join(timeout=15)


def test_demo_serves_first_then_swaps_in_the_better_background_model(served_first):
    base, started, runs_dir = served_first
    training = started["training"]
    assert training is not None
    demo.wait_for(f"{base}/health", timeout=60)
    # Serving before item-kNN exists: the fast model answers while the slow one trains (or has just finished).
    first = httpx.get(f"{base}/demo/status", timeout=5).json()
    assert first["done"] or first["still_training"] == ["itemknn"]
    deadline = time.monotonic() + 300
    while training.snapshot()["still_training"] and time.monotonic() < deadline:
        time.sleep(0.5)
    snap = httpx.get(f"{base}/demo/status", timeout=5).json()
    assert snap["still_training"] == [] and snap["done"] == ["itemknn"] and snap["failed"] == {}
    # item-kNN is better on validation than popularity: `current` moved, and the server followed it.
    assert os.path.realpath(runs_dir / "current") == str((runs_dir / "itemknn").resolve())
    assert snap["serving"] == "itemknn"
    version = json.loads((runs_dir / "itemknn" / "metrics.json").read_text())["version"]
    headers = {"X-API-Key": "k"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = httpx.get(f"{base}/v1/popular?k=3", headers=headers, timeout=5).json()["model_version"]
        if got == version:
            break
        time.sleep(0.3)
    assert got == version


def test_a_worse_or_failing_background_model_never_replaces_the_served_one(served_first, tmp_path):
    _, _, runs_dir = served_first
    runs = [demo.TrainedRun(n, runs_dir / n, json.loads((runs_dir / n / "metrics.json").read_text()), True)
            for n in ("popularity", "itemknn")]
    status = demo_training.TrainingStatus(pending=["popularity", "no-such-model"], serving="itemknn")
    lines: list[str] = []
    work = tmp_path / "demo"
    work.mkdir()
    for r in runs:  # a copy: the served build's `current` must not move under the other test
        os.symlink(r.path, work / r.name)
    reruns = [demo.TrainedRun(r.name, work / r.name, r.metrics, True) for r in runs]
    demo_training.train_later("online-retail", work, reruns[1:], {"popularity": {}, "no-such-model": {}}, status,
                              lines.append)
    snap = status.snapshot()
    assert snap["done"] == ["popularity"] and list(snap["failed"]) == ["no-such-model"]
    assert snap["serving"] == "itemknn"  # popularity is worse on validation (and never served "for you")
    assert os.path.realpath(work / "current") == os.path.realpath(work / "itemknn")
    assert any("no-such-model failed" in line for line in lines)
