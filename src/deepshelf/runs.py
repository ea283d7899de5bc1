"""Training runs: train + evaluate a model on a dataset and write an immutable `runs/<name>/` folder.

Layout: `config.json` (the TrainConfig), `model/` (the saved model), `metrics.json`, `report.md`, `plots/`.
A run is written to a temporary sibling folder and renamed into place, so readers never see half a run.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from deepshelf import __version__
from deepshelf.data.datasets import Dataset, load_dataset
from deepshelf.data.schema import EVENT_TYPE_NAMES
from deepshelf.data.splits import Split, make_split
from deepshelf.errors import DeepshelfError
from deepshelf.evaluation.evaluate import EvalResult, evaluate
from deepshelf.evaluation.report import write_report
from deepshelf.models.base import Recommender, build_config
from deepshelf.models.registry import model_class

log = logging.getLogger(__name__)


class TrainConfig(BaseModel):
    """What `deepshelf train` does: which data, which model with which parameters, which protocol."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    model: str
    params: dict[str, Any] = Field(default_factory=dict)  # the model's own config values
    catalog: str | None = None  # catalogue file for a dataset given by path
    protocol: Literal["auto", "leave-one-out", "temporal"] = "auto"
    test_days: float = Field(default=30.0, gt=0)  # temporal protocol: length of the test period
    valid_days: float = Field(default=30.0, gt=0)
    ks: tuple[int, ...] = (10, 20)
    # Strength of each event type (view/cart/purchase/...) over schema.DEFAULT_EVENT_WEIGHTS; a type
    # weighted 0 (impressions and searches by default) carries no preference and is left out of training.
    event_weights: dict[str, float] = Field(default_factory=dict)

    @field_validator("event_weights")
    @classmethod
    def _known_event_types(cls, value: dict[str, float]) -> dict[str, float]:
        for name, weight in value.items():
            if name not in EVENT_TYPE_NAMES:
                raise ValueError(f"unknown event type {name!r} (expected one of {', '.join(EVENT_TYPE_NAMES)})")
            if weight < 0:
                raise ValueError(f"weight of {name!r} must be >= 0")
        return value


def parse_value(text: str) -> Any:
    """A `--set` value: TOML scalar syntax when it parses (1, 0.5, true, "x"), else the raw string."""
    if text.lower() in ("none", "null"):
        return None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def build_train_config(dataset: str | None, model: str | None, config_file: Path | None,
                       overrides: list[str]) -> TrainConfig:
    """Merge a TOML config file, command-line dataset/model and `--set key=value` into a validated config.

    A `--set` key is a model parameter, or one of TrainConfig's own fields (protocol, test_days, ...).
    """
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            values = tomllib.loads(Path(config_file).read_text())
        except FileNotFoundError:
            raise DeepshelfError(f"{config_file}: config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise DeepshelfError(f"{config_file}: not valid TOML: {exc}") from None
    if dataset:
        values["dataset"] = dataset
    if model:
        values["model"] = model
    params = dict(values.get("params", {}))
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DeepshelfError(f"--set {item!r}: expected key=value")
        if key in TrainConfig.model_fields and key not in ("params", "dataset", "model"):
            values[key] = parse_value(raw)
        else:
            params[key] = parse_value(raw)
    values["params"] = params
    for required in ("dataset", "model"):
        if not values.get(required):
            raise DeepshelfError(f"missing --{required} (or '{required} = ...' in the config file)")
    try:
        cfg = TrainConfig(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise DeepshelfError(f"config field {field!r}: {err['msg']}") from None
    # Validate the model parameters now, before any data is loaded, so a typo fails in a second.
    build_config(model_class(cfg.model).Config, cfg.params)
    return cfg


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


@dataclass
class Run:
    """A trained run loaded back: its config, model and recorded metrics."""

    path: Path
    config: TrainConfig
    model: Recommender
    metrics: dict

    @property
    def version(self) -> str:
        return self.metrics.get("version", self.path.name)


def load_run(path: str | Path) -> Run:
    path = Path(path)
    if not (path / "config.json").exists():
        raise DeepshelfError(f"{path}: not a deepshelf run (no config.json)")
    try:
        cfg = TrainConfig(**json.loads((path / "config.json").read_text()))
        metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").exists() else {}
    except (json.JSONDecodeError, ValidationError) as exc:
        raise DeepshelfError(f"{path}: corrupt run files ({str(exc).splitlines()[0]})") from None
    return Run(path, cfg, Recommender.load(path / "model"), metrics)


def device_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"cpu ({platform.processor() or platform.machine()})"


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
    ds = load_dataset(cfg.dataset, catalog=cfg.catalog)
    if ds.interactions is None and hasattr(model, "fit_catalog"):
        return _train_catalog_run(cfg, model, ds, out, say)
    split = split_dataset(ds, cfg)
    say(f"{split.protocol} split: {split.train} ; {len(split.test)} test users")
    start = time.perf_counter()
    model.fit(split.train, ds.catalog, valid=split.valid)
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
    _write_run(out, cfg, model, metrics,
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

    _write_run(out, cfg, model, metrics, report)
    say(f"trained {cfg.model} in {train_seconds:.1f}s; wrote {out}")
    return out


def _write_run(out: Path, cfg: TrainConfig, model: Recommender, metrics: dict,
               report: Callable[[Path], None]) -> None:
    """Write config, model, metrics and report into a temp folder and rename it into place (atomic)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "config.json").write_text(cfg.model_dump_json(indent=2))
        model.save(tmp / "model")
        if (tmp / "model" / "content").is_dir():  # where a server looks for the content indexes: RUN/content
            (tmp / "content").symlink_to(Path("model") / "content", target_is_directory=True)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        report(tmp)
        if out.exists():
            trash = out.with_name(f".{out.name}.old-{time.time_ns()}")
            out.rename(trash)
            tmp.rename(out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def eval_split_of(run: Run, which: str):
    """Reload the run's dataset and rebuild the split deterministically; return (dataset, split, evalset)."""
    if which not in ("test", "valid"):
        raise DeepshelfError(f"--users {which!r}: expected test or valid")
    ds = load_dataset(run.config.dataset, catalog=run.config.catalog)
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
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    table.write_csv(tmp)
    tmp.replace(output)
    return table.height
