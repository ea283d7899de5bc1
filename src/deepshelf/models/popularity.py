"""Popularity baselines: all-time best sellers and recency-weighted trending items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from deepshelf.data.interactions import Histories, Interactions
from deepshelf.models.base import ModelConfig, Recommender, load_arrays, save_arrays


class PopularityConfig(ModelConfig):
    # Events older than this many days before the newest one are ignored (None: all time).
    window_days: float | None = Field(default=None, gt=0)
    # Exponential decay of an event's weight with its age; None means no decay.
    half_life_days: float | None = Field(default=None, gt=0)
    # Count each event's weight (purchase > cart > view) rather than 1.
    use_weights: bool = False


class Popularity(Recommender):
    """Scores every item by how many (recent, weighted) events it has; the same list for everyone."""

    name = "popularity"
    Config = PopularityConfig
    reason = "popular"

    def _fit(self, train: Interactions, catalog, validation) -> None:
        cfg = self.config
        age_days = (train.timestamp.max() - train.timestamp) / 86400.0
        weight = train.weight.astype(np.float64) if cfg.use_weights else np.ones(len(train))
        if cfg.window_days is not None:
            weight = weight * (age_days <= cfg.window_days)
        if cfg.half_life_days is not None:
            weight = weight * np.exp2(-age_days / cfg.half_life_days)
        counts = np.bincount(train.item, weights=weight, minlength=self.n_items)
        # The model is its own empty-history answer, so the base class stores (and saves) the scores.
        self.item_popularity = (counts / max(counts.max(), 1e-12)).astype(np.float32)

    def score(self, histories: Histories) -> np.ndarray:
        return np.broadcast_to(self.item_popularity, (len(histories), self.n_items))

    def _save_weights(self, path: Path) -> None:
        save_arrays(path, {})  # the scores are the saved item_popularity; an empty file keeps the layout

    def _load_weights(self, path: Path) -> None:
        load_arrays(path)


class TrendingConfig(PopularityConfig):
    half_life_days: float | None = Field(default=7.0, gt=0)


class Trending(Popularity):
    """What is selling now: popularity with a one-week half-life by default."""

    name = "trending"
    Config = TrendingConfig
    reason = "trending"
