"""The training pipeline: load, split, fit (choosing on validation), refit before the test period, evaluate on
validation and test, write the run; export a run's lists; the catalogue a run was trained with (to seed a new
service's store)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from deepshelf import __version__
from deepshelf.data.catalog import Catalog
from deepshelf.data.datasets import Dataset
from deepshelf.data.interactions import Histories
from deepshelf.data.splits import EvalSet, Split, make_split
from deepshelf.errors import DeepshelfError
from deepshelf.evaluation.evaluate import EvalResult, evaluate
from deepshelf.evaluation.report import write_report
from deepshelf.files import atomic_path
from deepshelf.models.base import Recommender
from deepshelf.models.registry import model_class
from deepshelf.runs.artifacts import Run, device_name, load_config, load_valid_model, write_run
from deepshelf.runs.config import TrainConfig
from deepshelf.runs.content import build_content, summary, writer
from deepshelf.runs.protocol import fit_on_validation, refit
from deepshelf.runs.sources import load_source
from deepshelf.storage import redact_url

log = logging.getLogger(__name__)


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


def fit_catalogs(ds: Dataset, split: Split) -> tuple[Catalog | None, Catalog | None]:
    """The catalogue each fit is handed: as of the validation cut for the fit on `split.train`, as of the test cut
    for the refit on `split.before_test` (temporal protocol), so prices and titles come from the rows before the
    fit's own cut while every product is listed (`Catalog.as_of`). Leave-one-out has no global cut (and sequence
    data no sales to date prices by): the catalogue as loaded, for both."""
    return ds.catalog_as_of(split.valid_cut), ds.catalog_as_of(split.test_cut)


def _summary(result: EvalResult) -> dict:
    return {"metrics": result.metrics, "slices": result.slices, "seconds": round(result.seconds, 3)}


VIEWS = ("valid", "valid_again", "test", "test_again")  # a Split's evaluation sets (the *_again: temporal only)


def _views(split: Split, prefix: str) -> dict:
    return {name: getattr(split, name) for name in VIEWS if name.startswith(prefix) and getattr(split, name)}


def train_run(cfg: TrainConfig, out: Path, overwrite: bool = False,
              progress: Callable[[str], None] | None = None) -> Path:
    """Load, split, fit (choosing on validation), refit before the test period (temporal protocol, unless
    `cfg.refit` is false), evaluate on validation and test, and write the run folder atomically.

    The saved model is the one tested: the refit one when there is a refit (`valid_model/` keeps the one the
    validation numbers came from); metrics.json records both fits (`before_refit`: the first fit's test numbers).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise DeepshelfError(f"{out} already exists (runs are immutable); choose another --out or pass --overwrite")
    say = progress or (lambda msg: log.info(msg))
    model = model_class(cfg.model)(**cfg.params)  # a bad model or parameter fails before any data is loaded
    say(f"loading {redact_url(cfg.dataset)}")
    ds = load_source(cfg.dataset, cfg.catalog)
    if ds.interactions is None and hasattr(model, "fit_catalog"):
        return _train_catalog_run(cfg, model, ds, out, say)
    split = split_dataset(ds, cfg)
    say(f"{split.protocol} split: {len(split.train):,} training events from {split.train.n_users:,} shoppers on "
        f"{split.train.n_items:,} products; {len(split.test):,} test shoppers")
    say(f"training {cfg.model}")
    began = time.time()
    valid_catalog, test_catalog = fit_catalogs(ds, split)
    chosen, search = fit_on_validation(cfg, split, valid_catalog, say)
    do_refit = cfg.refit if cfg.refit is not None else split.protocol == "temporal"
    refitted = None
    if do_refit:
        say(f"trained {cfg.model} in {chosen.seconds:.1f}s; refitting on {len(split.before_test):,} events "
            "before the test period")
        refitted = refit(cfg, chosen, split.before_test, test_catalog)
    from deepshelf.training.distributed import is_main_process, wait_for_main

    if not is_main_process():  # under torchrun (--nproc N) rank 0 alone evaluates and writes the run
        wait_for_main(out, since=began)
        return out
    say(f"trained {cfg.model}; evaluating")
    tested = refitted or chosen
    popularity = split.train.item_popularity()
    results = {name: evaluate(chosen.model, es, cfg.ks, popularity) for name, es in _views(split, "valid").items()}
    results |= {name: evaluate(tested.model, es, cfg.ks, popularity) for name, es in _views(split, "test").items()}
    stale = {} if refitted is None else {
        name: evaluate(chosen.model, es, cfg.ks, popularity) for name, es in _views(split, "test").items()}
    metrics = {
        "version": f"{out.name}-{time.strftime('%Y%m%d%H%M%S')}",
        "dataset": redact_url(cfg.dataset), "model": cfg.model, "protocol": split.protocol,
        "train_seconds": round(chosen.seconds, 3), "device": device_name(), "deepshelf": __version__,
        "users": split.train.n_users, "items": split.train.n_items, "train_events": len(split.train),
        **{name: _summary(r) for name, r in results.items()},
        **({"training": chosen.model.training_log} if getattr(chosen.model, "training_log", None) else {}),
    }
    if search or refitted is not None:
        metrics["chosen"] = {"params": chosen.params, "on": "validation ndcg@10 (discovery)", "search": search}
    content = None
    if cfg.content and getattr(tested.model, "similar_index", None) is None:  # a content model has its own
        # Over every catalogue product, with behaviour vectors from the events the saved model learnt from, and
        # the catalogue that model was fit with.
        content = build_content(test_catalog if refitted is not None else valid_catalog,
                                split.before_test if refitted is not None else split.train, cfg.content_params, say,
                                ds.search_log)
    if content is not None:
        metrics["content_indexes"] = summary(content, ds.name)
    if refitted is not None:
        metrics["refit"] = {"params": refitted.params, "overrides": refitted.overrides,
                            "train_events": len(split.before_test), "train_seconds": round(refitted.seconds, 3),
                            **({"training": refitted.model.training_log}
                               if getattr(refitted.model, "training_log", None) else {})}
        metrics["before_refit"] = {name: _summary(r) for name, r in stale.items()}

    def report(tmp: Path) -> None:
        shown = results | {f"{name}, before refit": r for name, r in stale.items()}
        path = write_report(tmp, f"{cfg.model} on {redact_url(cfg.dataset)}", shown, popularity)
        if refitted is not None:
            with path.open("a") as f:
                f.write(refit_section(metrics))

    write_run(out, cfg, tested.model, metrics, report, valid_model=chosen.model if refitted is not None else None,
              content=None if content is None else writer(content, metrics["content_indexes"]))
    say(f"wrote {out}")
    return out


def refit_section(metrics: dict) -> str:
    """The report's account of the refit: what was chosen on validation, what was refit, test before and after."""
    chosen, refit_ = metrics["chosen"], metrics["refit"]
    lines = ["\n## Chosen on validation, then refit\n",
             f"Parameters chosen on {chosen['on']}: `{json.dumps(chosen['params'])}`.\n"]
    if chosen["search"]:
        lines += ["\n| parameters | validation NDCG@10 | training s |", "|---|---:|---:|"]
        lines += [f"| `{json.dumps(s['params'])}` | {s['valid_ndcg@10']:.4f} | {s['train_seconds']:.1f} |"
                  for s in chosen["search"]]
        lines.append("")
    lines += [f"\nRefit on the {refit_['train_events']:,} events before the test period (training and validation "
              f"periods) in {refit_['train_seconds']:.1f}s, keeping `{json.dumps(refit_['overrides'])}` from the "
              "first fit; the saved model (served, exported for the test views) is the refit one.\n",
              "\n| test view | HR@10 before refit | HR@10 after | NDCG@10 before refit | NDCG@10 after |",
              "|---|---:|---:|---:|---:|"]
    for name, before in metrics["before_refit"].items():
        b, a = before["metrics"], metrics[name]["metrics"]
        lines.append(f"| {name} | {b.get('hr@10', float('nan')):.4f} | {a.get('hr@10', float('nan')):.4f} | "
                     f"{b.get('ndcg@10', float('nan')):.4f} | {a.get('ndcg@10', float('nan')):.4f} |")
    return "\n".join(lines) + "\n"


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
        "dataset": redact_url(cfg.dataset), "model": cfg.model, "protocol": "catalogue-holdout",
        "train_seconds": round(train_seconds, 3), "device": device_name(), "deepshelf": __version__,
        "users": 0, "items": len(ds.catalog), "train_events": 0, "content": model.content_metrics,
    }

    def report(tmp: Path) -> None:
        lines = [f"# {cfg.model} on {redact_url(cfg.dataset)}", "", "Held-out products' neighbours: share with the same value "
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
    """Reload the run's dataset and rebuild the split deterministically; return (dataset, split, evalset).

    `which`: test or valid (discovery: items new to the shopper, seen items excluded), test_again or valid_again
    (buy again: every item bought in the period, seen items allowed; temporal protocol only).
    """
    if which not in VIEWS:
        raise DeepshelfError(f"--users {which!r}: expected test, valid, test_again or valid_again (or all, to export "
                             "every shopper's list)")
    ds = load_source(run.config.dataset, run.config.catalog)
    split = split_dataset(ds, run.config)
    if split.train.item_map != run.model.item_map:
        raise DeepshelfError(f"{run.path}: the dataset {run.config.dataset!r} no longer matches the run's items")
    evalset = getattr(split, which)
    if evalset is None:
        raise DeepshelfError(f"--users {which!r}: the {split.protocol} protocol has no buy-again view "
                             "(expected test or valid)")
    return ds, split, evalset


def _view_users(run: Run, which: str):
    _, split, es = eval_split_of(run, which)
    return split.train.user_map, es


def every_shopper(run: Run):
    """(user map, an EvalSet of every shopper with an event, scored from their whole history, seen items excluded):
    today's lists for every customer, as the saved model serves them."""
    ds = load_source(run.config.dataset, run.config.catalog)
    if ds.interactions is None:
        raise DeepshelfError(f"dataset {ds.name!r} has no shopper events")
    inter = ds.interactions.with_type_weights(run.config.event_weights)
    inter = inter.subset(inter.weight > 0)
    if inter.item_map != run.model.item_map:
        raise DeepshelfError(f"{run.path}: the dataset {run.config.dataset!r} no longer matches the run's items")
    histories = inter.to_sequences()
    users = np.flatnonzero(histories.lengths > 0)
    empty = Histories(np.zeros(len(users) + 1, np.int64), np.zeros(0, np.int32))
    return inter.user_map, EvalSet(users, histories.select(users), empty)


def view_model(run: Run, which: str) -> Recommender:
    """The model a view's recorded numbers came from: the saved (refit) model for the test views; for the
    validation views the first fit (`valid_model/`) when the run was refit, as the refit one has seen them."""
    if which.startswith("valid"):
        return load_valid_model(run.path) or run.model
    return run.model


def export_recommendations(run: Run, which: str, k: int, output: Path) -> int:
    """Write `user_id,item_id,rank,score` (original ids, rank from 1) for every evaluated user of view `which` (or
    for every shopper with an event: `all`) from `view_model(run, which)`; a discovery view (test, valid, all) never
    lists a shopper's seen item. Only the rows the model has evidence for are written (`with_evidence`: a list
    stops before its first 0-score item instead of padding it with arbitrary ties), so a shopper may get fewer
    than `k` rows or none; the written rows are the evaluated ranking's first ones. Returns rows."""
    import polars as pl

    from deepshelf.evaluation.evaluate import recommend_all, with_evidence

    user_map, es = every_shopper(run) if which == "all" else _view_users(run, which)
    model = view_model(run, which)
    ranked, scores = recommend_all(model, es, k)
    valid = with_evidence(ranked, scores)
    users = np.repeat(user_map.ids[es.users], valid.sum(1))
    ranks = np.broadcast_to(np.arange(1, ranked.shape[1] + 1), ranked.shape)[valid]
    table = pl.DataFrame({"user_id": users.astype(str), "item_id": model.item_map.ids[ranked[valid]].astype(str),
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
