"""Training runs: event-type weights from the config reach the models; bad weights are refused."""

import json

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
