"""The shop protocol's two fits: choose on validation, then refit on everything before the test period.

1. `fit_on_validation`: the model is fit on the training events with the validation period at hand (models that
   stop early choose their epochs there); with a `search` grid, one fit per combination, the best validation
   NDCG@10 (discovery view) kept.
2. `refit`: a fresh model of the same class, with the chosen parameters plus what the chosen fit asks to keep
   (`Recommender.refit_overrides()`, e.g. SASRec's best epoch), fit without validation on every event before the
   test cut (`Split.before_test`), as a shop retrains up to today. That model is tested, saved and served.

Each fit is handed the catalogue as of its own cut (`pipeline.fit_catalogs`): the products' prices and titles from
the rows before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deepshelf.data.catalog import Catalog
from deepshelf.data.interactions import Interactions
from deepshelf.data.splits import Split
from deepshelf.evaluation.evaluate import validation
from deepshelf.models.base import Recommender
from deepshelf.models.registry import model_class
from deepshelf.runs.config import TrainConfig, search_grid


@dataclass
class Fitted:
    """A fitted model, the parameters it was built with and how long its fit took."""

    model: Recommender
    params: dict[str, Any]
    seconds: float
    overrides: dict[str, Any] = field(default_factory=dict)  # refit only: what the chosen fit asked to keep


def fit_on_validation(cfg: TrainConfig, split: Split, catalog: Catalog | None,
                      say: Callable[[str], None]) -> tuple[Fitted, list[dict]]:
    """The chosen fit on `split.train`, and the search's scores (one entry per combination; [] without a search)."""
    check = validation(split.valid)
    points = search_grid(cfg)
    best, best_score, scores = None, float("-inf"), []
    for number, point in enumerate(points, 1):
        params = {**cfg.params, **point}
        model = model_class(cfg.model)(**params)
        start = time.perf_counter()
        model.fit(split.train, catalog, validation=check)
        seconds = time.perf_counter() - start
        if len(points) == 1:  # nothing to choose between: no extra validation pass
            return Fitted(model, params, seconds), []
        score = check(model)
        scores.append({"params": point, "valid_ndcg@10": round(score, 6), "train_seconds": round(seconds, 3)})
        say(f"search {number}/{len(points)} {point}: validation NDCG@10 {score:.4f}")
        if score > best_score:
            best, best_score = Fitted(model, params, seconds), score
    return best, scores


def refit(cfg: TrainConfig, chosen: Fitted, events: Interactions, catalog: Catalog | None) -> Fitted:
    """A fresh `cfg.model` with the chosen parameters and the chosen fit's overrides, fit on `events` alone."""
    overrides = chosen.model.refit_overrides()
    params = {**chosen.params, **overrides}
    model = model_class(cfg.model)(**params)
    start = time.perf_counter()
    model.fit(events, catalog, validation=None)
    return Fitted(model, params, time.perf_counter() - start, overrides)
