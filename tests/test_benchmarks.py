"""The benchmarks' shape: one package run as modules from the repository root (`python -m benchmarks.NAME`), so no
file patches `sys.path`; no file over the 450-line limit; recorded results stored once."""

import hashlib
from collections import defaultdict
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
MAX_LINES = 450


def python_files() -> list[Path]:
    return sorted(p for p in BENCHMARKS.rglob("*.py") if "results" not in p.relative_to(BENCHMARKS).parts)


def test_no_benchmark_file_patches_sys_path():
    assert python_files()
    patching = [str(p.relative_to(BENCHMARKS)) for p in python_files() if "sys.path" in p.read_text()]
    assert patching == []


def test_no_benchmark_file_over_the_limit():
    long = {str(p.relative_to(BENCHMARKS)): n for p in python_files()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_no_duplicated_results():
    by_content = defaultdict(list)
    for path in sorted((BENCHMARKS / "results").rglob("*")):
        if path.is_file():
            by_content[hashlib.sha256(path.read_bytes()).hexdigest()].append(str(path.relative_to(BENCHMARKS)))
    assert [paths for paths in by_content.values() if len(paths) > 1] == []


def test_recbole_compare_equal_recipe_reaches_the_loop_as_recbole_trains(clusters, monkeypatch):
    """`--recipe equal`: configs/sasrec-beauty.toml with RECIPES["equal"] reaches the training loop with no
    warm-up, a constant learning rate and no clipping (tests/training/test_loop.py checks what that loop does);
    the own recipe keeps the config's warm-up, cosine and clipping. Every second seed trades the cores."""
    import tomllib

    from benchmarks.lib import ROOT
    from benchmarks.recbole_compare import RECIPES, cores_for
    from deepshelf.models.sasrec import SASRec, estimator

    params = tomllib.loads((ROOT / "configs" / "sasrec-beauty.toml").read_text())["params"]
    caught = []
    monkeypatch.setattr(estimator, "train_loop", lambda *a, **k: caught.append(a[3]) or [])
    for recipe in ("equal", "own"):
        SASRec(**{**params, **RECIPES[recipe], "epochs": 1, "progress": False}).fit(clusters)
    equal, own = caught
    assert (equal.warmup_steps, equal.schedule, equal.clip, equal.weight_decay) == (0, "constant", 0.0, 0.0)
    assert (own.warmup_steps, own.schedule, own.clip) == (100, "cosine", 1.0)
    assert [cores_for(i, True) for i in range(3)] == [(0, 1), (1, 0), (0, 1)]
    assert [cores_for(i, False) for i in range(2)] == [(0, 1), (0, 1)]
