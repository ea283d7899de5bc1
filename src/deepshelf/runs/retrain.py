"""Automatic retraining: train a new run from the event store, compare it with the serving run on the same most
recent period, and promote it (re-point `DIR/current`, which `deepshelf serve --run DIR/current` follows) only when
it is not worse beyond a tolerance; roll back to the previously promoted run.

The comparison: the store is read again after training and split as the new run's config says (the temporal
protocol: its test period, the last `test_days`); its discovery view is scored through the same `evaluate()` for
both models, each in its own item space. The serving run may not know items that appeared since it was trained:
their targets count as missed and its shoppers' histories lose them, as they would when served. A model never
trains on the period (the new run is refit on the events before its test cut, which is no later than this one's).

Every round (promoted, refused or failed) and every rollback is kept in `DIR/decisions.jsonl` (runs.decisions).
Each new run carries content indexes built from the store's catalogue as it is then (runs.content; `--set
content=false` leaves them out), so a server swapped to it keeps search and similar-by-text, new products included.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deepshelf.data.idmap import IdMap
from deepshelf.data.interactions import Histories
from deepshelf.data.splits import EvalSet
from deepshelf.errors import DeepshelfError
from deepshelf.evaluation.evaluate import evaluate
from deepshelf.models.base import Recommender, build_config
from deepshelf.models.registry import model_class
from deepshelf.runs.artifacts import load_config, load_run
from deepshelf.runs.config import TrainConfig, build_train_config
from deepshelf.runs.decisions import (append_decision, current_target, locked, point_current, promotion_history,
                                      read_decisions)
from deepshelf.runs.pipeline import split_dataset, train_run
from deepshelf.runs.sources import load_source
from deepshelf.storage import is_store_url, redact_url

log = logging.getLogger(__name__)

DEFAULT_MODEL = "ranker"
METRIC = "ndcg@10"  # what promotion compares (discovery view of the most recent period)
RECORDED = ("ndcg@10", "hr@10", "recall@10", "mrr@10", "coverage@10", "users")


class RetrainConfig(BaseModel):
    """What `deepshelf retrain` does each round."""

    model_config = ConfigDict(extra="forbid")

    database: str  # the event store to train from (sqlite:///… or postgresql://…)
    runs_dir: Path  # new runs, `current` and decisions.jsonl live here
    model: str | None = None  # None: what `current` serves (with its settings), else DEFAULT_MODEL
    overrides: list[str] = Field(default_factory=list)  # `--set key=value`, as for `deepshelf train`
    tolerance: float = Field(default=0.02, ge=0, lt=1)  # relative NDCG@10 drop still promoted


def train_config(cfg: RetrainConfig, serving: str | None) -> TrainConfig:
    """The new run's TrainConfig: `cfg.model` with `cfg.overrides`; without a model, the serving run's model and
    settings (its parameters, protocol, search) with the overrides on top; without either, the learned ranker.

    Raises `DeepshelfError` for an unknown model or an invalid `--set`, before any data is read.
    """
    if not is_store_url(cfg.database):
        raise DeepshelfError(f"--database {redact_url(cfg.database)!r}: expected an event store URL (sqlite:///… or "
                             "postgresql://…)")
    base = None
    if cfg.model is None and serving is not None:
        try:
            base = load_config(cfg.runs_dir / serving)
        except DeepshelfError as exc:
            log.warning("cannot read the serving run's settings (%s); training %s", exc, DEFAULT_MODEL)
    chosen = build_train_config(cfg.database, cfg.model or (base.model if base else DEFAULT_MODEL), None,
                                list(cfg.overrides))
    if base is None:
        return chosen
    explicit = {name: getattr(chosen, name) for name in chosen.model_fields_set - {"dataset", "model", "params"}}
    merged = {**base.model_dump(exclude={"dataset", "catalog"}), **explicit,
              "dataset": cfg.database, "params": {**base.params, **chosen.params}}
    try:
        merged_cfg = TrainConfig(**merged)
    except ValidationError as exc:
        raise DeepshelfError(f"the serving run's settings with --set: {exc.errors()[0]['msg']}") from None
    build_config(model_class(merged_cfg.model).Config, merged_cfg.params)
    return merged_cfg


def in_item_space(evalset: EvalSet, source: IdMap, target: IdMap) -> EvalSet:
    """`evalset` (item indices of `source`) in the item indices of `target` (another model's items).

    History items `target` does not know are dropped (its model could not use them when serving); target items it
    does not know become `len(target)`, an index no ranking holds, so they stay in the denominators as misses.
    """
    if source == target:
        return evalset
    to = target.lookup(source.ids)  # int64 [source items], -1 where unknown
    inputs, history = evalset.inputs, to[evalset.inputs.items]
    keep = history >= 0
    row = np.repeat(np.arange(len(inputs)), inputs.lengths)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(row[keep], minlength=len(inputs)))]).astype(np.int64)
    kept = Histories(indptr, history[keep].astype(np.int32),
                     None if inputs.types is None else inputs.types[keep],
                     None if inputs.timestamps is None else inputs.timestamps[keep])
    wanted = to[evalset.targets.items]
    wanted = np.where(wanted >= 0, wanted, len(target)).astype(np.int32)
    targets = Histories(evalset.targets.indptr, wanted, evalset.targets.types, evalset.targets.timestamps)
    return EvalSet(evalset.users, kept, targets, evalset.slices, evalset.target_slices, evalset.exclude_seen)


def comparison_period(cfg: TrainConfig) -> tuple[EvalSet, IdMap, dict]:
    """The most recent period as `cfg` splits the store now: its discovery view, its item map, and what it is."""
    ds = load_source(cfg.dataset)
    split = split_dataset(ds, cfg)
    period: dict = {"view": "test", "protocol": split.protocol, "users": len(split.test)}
    if split.protocol == "temporal":
        end = float(ds.interactions.timestamp.max())
        period |= {"from": _iso(end - cfg.test_days * 86400), "to": _iso(end)}
    return split.test, split.train.item_map, period


def score(model: Recommender, evalset: EvalSet, source: IdMap) -> dict[str, float]:
    """`model`'s metrics at 10 on `evalset` (in `source`'s item indices), through the same `evaluate()`."""
    result = evaluate(model, in_item_space(evalset, source, model.item_map), (10,))
    return {name: round(result.metrics[name], 6) for name in RECORDED if name in result.metrics}


def judge(new: float, serving: float | None, tolerance: float) -> tuple[bool, str]:
    """Promote when `new` (NDCG@10) is at least `serving * (1 - tolerance)`; the reason in words."""
    if serving is None:
        return True, "no serving run to compare with"
    if new >= serving * (1 - tolerance):
        return True, (f"{METRIC} {new:.4f} vs {serving:.4f} serving: not worse beyond the tolerance "
                      f"({tolerance:.2%})")
    return False, (f"{METRIC} {new:.4f} is {1 - new / serving:.2%} below the serving run's {serving:.4f} "
                   f"(tolerance {tolerance:.2%})")


def retrain_once(cfg: RetrainConfig, progress: Callable[[str], None] | None = None) -> dict:
    """One round: train from the store into `DIR/<model>-<UTC time>`, compare, promote or not, log the decision.

    Never raises for a failed training or comparison: the decision says `action: "failed"`, `stage` (settings,
    training or comparison), `user_error` (an invalid setting or unusable data, as opposed to a crash) and why.
    `current` changes only when `action` is "promoted".
    """
    say = progress or log.info
    runs_dir = Path(cfg.runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    record: dict = {"time": _iso(time.time()), "action": None, "promoted": False, "run": None, "version": None,
                    "serving": None, "model": cfg.model, "database": redact_url(cfg.database), "metric": METRIC,
                    "tolerance": cfg.tolerance, "new_metrics": None, "serving_metrics": None}
    stage = "settings"
    try:
        serving = record["serving"] = current_target(runs_dir)
        train_cfg = train_config(cfg, serving)
        record["model"] = train_cfg.model
        name = record["run"] = _new_run_name(runs_dir, train_cfg.model)
        stage = "training"
        say(f"training {train_cfg.model} from {record['database']} into {runs_dir / name}")
        train_run(train_cfg, runs_dir / name, progress=say)
        stage = "comparison"
        new = load_run(runs_dir / name)
        record["version"] = new.version
        evalset, items, record["period"] = comparison_period(train_cfg)
        say(f"comparing on the most recent period ({len(evalset)} shoppers)")
        record["new_metrics"] = score(new.model, evalset, items)
        serving_run, note = _serving_run(runs_dir, serving)
        if serving_run is not None:
            record["serving_version"] = serving_run.version
            record["serving_metrics"] = score(serving_run.model, evalset, items)
    except Exception as exc:  # a failed round never touches `current`
        user_error = isinstance(exc, DeepshelfError)
        if not user_error:
            log.exception("retraining failed (%s)", stage)
        return _log(runs_dir, record | {"action": "failed", "stage": stage, "user_error": user_error,
                                        "reason": f"{stage} failed: {exc}"})
    if serving_run is None:
        promote, reason = True, note
    elif len(evalset) == 0:
        promote, reason = False, "no shopper bought a new item in the most recent period: nothing to compare on"
    else:
        promote, reason = judge(record["new_metrics"][METRIC], record["serving_metrics"][METRIC], cfg.tolerance)
    with locked(runs_dir):
        now = current_target(runs_dir)
        if promote and now != serving:
            promote, reason = False, f"current was re-pointed to {now} during the round; compared with {serving}"
        if promote:
            point_current(runs_dir, name)
        record |= {"action": "promoted" if promote else "refused", "promoted": promote, "reason": reason}
        append_decision(runs_dir, record)
    log.info("%s %s: %s", record["action"], name, reason)
    return record


def retrain_every(cfg: RetrainConfig, every_s: float, rounds: int | None = None,
                  progress: Callable[[str], None] | None = None,
                  on_decision: Callable[[dict], None] | None = None,
                  sleep: Callable[[float], None] = time.sleep) -> list[dict]:
    """Run a round every `every_s` seconds (`rounds` of them, None: until interrupted); a failed round is logged
    and the next one runs. Invalid settings in the first round raise `DeepshelfError` (every round would fail)."""
    decisions: list[dict] = []
    while rounds is None or len(decisions) < rounds:
        if decisions:
            sleep(every_s)
        decision = retrain_once(cfg, progress)
        if not decisions and decision.get("stage") == "settings":
            raise DeepshelfError(decision["reason"])
        decisions.append(decision)
        if on_decision is not None:
            on_decision(decision)
    return decisions


def rollback(runs_dir: Path) -> dict:
    """Point `DIR/current` back at the run promoted before the one it serves (from the decision log); log it."""
    runs_dir = Path(runs_dir)
    with locked(runs_dir):
        history = promotion_history(read_decisions(runs_dir))
        if len(history) < 2:
            raise DeepshelfError(f"{runs_dir}: no earlier promoted run in {runs_dir / 'decisions.jsonl'} "
                                 "to roll back to")
        back_to = history[-2]
        if not (runs_dir / back_to / "config.json").exists():
            raise DeepshelfError(f"{runs_dir / back_to}: the previously promoted run is gone; cannot roll back")
        now = current_target(runs_dir)
        point_current(runs_dir, back_to)
        record = {"time": _iso(time.time()), "action": "rollback", "promoted": False, "run": back_to,
                  "serving": now, "reason": f"rolled back from {now} to {back_to}"}
        append_decision(runs_dir, record)
    log.info(record["reason"])
    return record


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> float:
    """Seconds in an interval like `90s`, `15m`, `6h`, `1d` (a bare number is seconds)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match or float(match[1]) <= 0:
        raise DeepshelfError(f"--every {text!r}: expected a positive interval like 30m, 6h or 1d")
    return float(match[1]) * _UNITS[match[2] or "s"]


def _serving_run(runs_dir: Path, serving: str | None):
    """(the serving run, None), or (None, why the new run is promoted without a comparison)."""
    if serving is None:
        return None, "first run: nothing served yet"
    try:
        return load_run(runs_dir / serving), ""
    except (DeepshelfError, OSError) as exc:  # the service cannot load it either: any working run is better
        return None, f"the serving run {serving} cannot be loaded ({exc})"


def _log(runs_dir: Path, record: dict) -> dict:
    with locked(runs_dir):
        append_decision(runs_dir, record)
    log.info("%s", record["reason"])
    return record


def _new_run_name(runs_dir: Path, model: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    name, n = f"{model}-{stamp}", 1
    while (runs_dir / name).exists():
        n += 1
        name = f"{model}-{stamp}-{n}"
    return name


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")
