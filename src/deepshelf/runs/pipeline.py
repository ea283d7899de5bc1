"""The training pipeline: load, split, fit, evaluate on validation and test, write the run; export a run's lists;
the catalogue a run was trained with (to seed a new service's store)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from deepshelf import __version__
from deepshelf.data.catalog import Catalog
from deepshelf.data.datasets import Dataset, dataset_from_frames, load_dataset
from deepshelf.data.loaders import read_catalog
from deepshelf.data.splits import Split, make_split
from deepshelf.errors import DeepshelfError
from deepshelf.evaluation.evaluate import EvalResult, evaluate, validation
from deepshelf.evaluation.report import write_report
from deepshelf.files import atomic_path
from deepshelf.models.base import Recommender
from deepshelf.models.registry import model_class
from deepshelf.runs.artifacts import Run, device_name, load_config, write_run
from deepshelf.runs.config import TrainConfig
from deepshelf.storage import is_store_url, read_training_frames, redact_url

log = logging.getLogger(__name__)


def load_source(name_or_url: str, catalog: str | None = None) -> Dataset:
    """The training data a config names: an event store URL (`deepshelf train --database`), else a built-in dataset
    or a file path; `catalog` (a file) replaces the source's own catalogue."""
    if not is_store_url(name_or_url):
        return load_dataset(name_or_url, catalog=catalog)
    ds = dataset_from_frames(redact_url(name_or_url), *read_training_frames(name_or_url))
    if catalog is not None:
        ds.catalog = read_catalog(catalog)
    return ds


def split_dataset(ds: Dataset, cfg: TrainConfig) -> Split:
    if ds.interactions is None:
        raise DeepshelfError(f"dataset {ds.name!r} has no shopper events to train a recommender on")
    inter = ds.interactions.with_type_weights(cfg.event_weights)
    inter = inter.subset(inter.weight > 0)
    if len(inter) == 0:
        raise DeepshelfError(f"dataset {ds.name!r}: no events left with a positive event weight")
    protocol = cfg.protocol
    if protocol == "auto":
        protocol = "temporal" if ds.timestamped else "leave-one-out"
    if protocol == "temporal":
        if not ds.timestamped:
            raise DeepshelfError(f"dataset {ds.name!r} has no timestamps; use protocol=leave-one-out")
        return make_split(inter, "temporal", test_days=cfg.test_days, valid_days=cfg.valid_days)
    return make_split(inter, "leave-one-out")


def _summary(result: EvalResult) -> dict:
    return {"metrics": result.metrics, "slices": result.slices, "seconds": round(result.seconds, 3)}


def train_run(cfg: TrainConfig, out: Path, overwrite: bool = False,
              progress: Callable[[str], None] | None = None) -> Path:
    """Load, split, fit, evaluate on validation and test, and write the run folder atomically."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise DeepshelfError(f"{out} already exists (runs are immutable); choose another --out or pass --overwrite")
    say = progress or (lambda msg: log.info(msg))
    model = model_class(cfg.model)(**cfg.params)
    say(f"loading {cfg.dataset}")
    ds = load_source(cfg.dataset, cfg.catalog)
    if ds.interactions is None and hasattr(model, "fit_catalog"):
        return _train_catalog_run(cfg, model, ds, out, say)
    split = split_dataset(ds, cfg)
    say(f"{split.protocol} split: {split.train} ; {len(split.test)} test users")
    start = time.perf_counter()
    model.fit(split.train, ds.catalog, validation(split.valid))
    train_seconds = time.perf_counter() - start
    from deepshelf.training.distributed import is_main_process, wait_for_main

    if not is_main_process():  # under torchrun (--nproc N) rank 0 alone evaluates and writes the run
        wait_for_main(out, since=time.time() - train_seconds)
        return out
    say(f"trained {cfg.model} in {train_seconds:.1f}s; evaluating")
    popularity = split.train.item_popularity()
    results = {name: evaluate(model, es, cfg.ks, popularity) for name, es in (("valid", split.valid),
                                                                               ("test", split.test))}
    metrics = {
        "version": f"{out.name}-{time.strftime('%Y%m%d%H%M%S')}",
        "dataset": cfg.dataset, "model": cfg.model, "protocol": split.protocol,
        "train_seconds": round(train_seconds, 3), "device": device_name(), "deepshelf": __version__,
        "users": split.train.n_users, "items": split.train.n_items, "train_events": len(split.train),
        **{name: _summary(r) for name, r in results.items()},
        **({"training": model.training_log} if getattr(model, "training_log", None) else {}),
    }
    write_run(out, cfg, model, metrics,
               lambda tmp: write_report(tmp, f"{cfg.model} on {cfg.dataset}", results, popularity))
    say(f"wrote {out}")
    return out


def _train_catalog_run(cfg: TrainConfig, model: Recommender, ds: Dataset, out: Path,
                       say: Callable[[str], None]) -> Path:
    """A content-only run (a catalogue without shopper events): the model's own held-out content metrics."""
    if ds.catalog is None:
        raise DeepshelfError(f"dataset {ds.name!r} has neither shopper events nor a catalogue")
    start = time.perf_counter()
    model.fit_catalog(ds.catalog, progress=True)
    train_seconds = time.perf_counter() - start
    metrics = {
        "version": f"{out.name}-{time.strftime('%Y%m%d%H%M%S')}",
        "dataset": cfg.dataset, "model": cfg.model, "protocol": "catalogue-holdout",
        "train_seconds": round(train_seconds, 3), "device": device_name(), "deepshelf": __version__,
        "users": 0, "items": len(ds.catalog), "train_events": 0, "content": model.content_metrics,
    }

    def report(tmp: Path) -> None:
        lines = [f"# {cfg.model} on {cfg.dataset}", "", "Held-out products' neighbours: share with the same value "
                 f"(P@{model.content_metrics.get('k', 10)}).", "", "| mode | " +
                 " | ".join(model.content_metrics.get("attributes", [])) + " |",
                 "|---|" + "---|" * len(model.content_metrics.get("attributes", []))]
        for mode, values in model.content_metrics.items():
            if isinstance(values, dict):
                lines.append(f"| {mode} | " + " | ".join(f"{v:.4f}" for v in values.values()) + " |")
        (tmp / "report.md").write_text("\n".join(lines) + "\n")

    write_run(out, cfg, model, metrics, report)
    say(f"trained {cfg.model} in {train_seconds:.1f}s; wrote {out}")
    return out


def eval_split_of(run: Run, which: str):
    """Reload the run's dataset and rebuild the split deterministically; return (dataset, split, evalset)."""
    if which not in ("test", "valid"):
        raise DeepshelfError(f"--users {which!r}: expected test or valid")
    ds = load_source(run.config.dataset, run.config.catalog)
    split = split_dataset(ds, run.config)
    if split.train.item_map != run.model.item_map:
        raise DeepshelfError(f"{run.path}: the dataset {run.config.dataset!r} no longer matches the run's items")
    return ds, split, getattr(split, which)


def export_recommendations(run: Run, which: str, k: int, output: Path) -> int:
    """Write `user_id,item_id,rank,score` (original ids, rank from 1) for every evaluated user; returns rows."""
    import polars as pl

    from deepshelf.evaluation.evaluate import recommend_all

    ds, split, es = eval_split_of(run, which)
    ranked, scores = recommend_all(run.model, es, k)
    valid = ranked >= 0
    users = np.repeat(split.train.user_map.ids[es.users], valid.sum(1))
    ranks = np.broadcast_to(np.arange(1, ranked.shape[1] + 1), ranked.shape)[valid]
    table = pl.DataFrame({"user_id": users.astype(str), "item_id": run.model.item_map.ids[ranked[valid]].astype(str),
                          "rank": ranks, "score": scores[valid]})
    with atomic_path(output) as tmp:
        table.write_csv(tmp)
    return table.height


def run_catalog(run_path: str | Path) -> Catalog | None:
    """The catalogue of the dataset a run was trained on, or None when that dataset has none.

    For a service's first start: `deepshelf serve` seeds an empty store's catalogue with it. Reads only the run's
    config, not its model.
    """
    cfg = load_config(run_path)
    return load_source(cfg.dataset, cfg.catalog).catalog
