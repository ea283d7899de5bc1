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
        self.scale = float(max(counts.max(), 1e-12))
        self.fit_end = float(train.timestamp.max())
        self.item_popularity = (counts / self.scale).astype(np.float32)

    # Between fits a generator inside the ranker follows the sales since its fit (`follow`): its scores as of now.
    live_scores: np.ndarray | None = None
    scale: float | None = None  # the largest count before scaling (None: a model saved without it)
    fit_end: float | None = None  # the newest event it was fit on

    def score(self, histories: Histories) -> np.ndarray:
        live = self.live_scores
        return np.broadcast_to(self.item_popularity if live is None else live, (len(histories), self.n_items))

    def follow(self, items: np.ndarray, ts: np.ndarray, weights: np.ndarray, now: float) -> None:
        """Score as a refit on the fit's events plus `items` / `ts` / `weights` (every event after the fit's end,
        item indices, Unix seconds, type weights) would, up to `now`; without events, the fit's scores. Exact for
        all-time counts and for a half-life (a decay by age is the same factor for every item's old events); a
        `window_days` needs the old events themselves, so such a model keeps its fit's scores."""
        cfg = self.config
        if cfg.window_days is not None or self.scale is None or not len(items):
            self.live_scores = None
            return
        w = np.asarray(weights, np.float64) if cfg.use_weights else np.ones(len(items))
        old = self.item_popularity.astype(np.float64) * self.scale
        if cfg.half_life_days is not None:
            half = cfg.half_life_days * 86400.0
            old = old * np.exp2(-(now - self.fit_end) / half)
            w = w * np.exp2(-(now - np.asarray(ts, np.float64)) / half)
        counts = old + np.bincount(items, weights=w, minlength=self.n_items)
        self.live_scores = (counts / max(counts.max(), 1e-12)).astype(np.float32)

    def _save_weights(self, path: Path) -> None:
        # the scores are the saved item_popularity; the scale and fit end let a loaded model follow new sales
        save_arrays(path, {"scale": np.array([self.scale or np.nan]), "fit_end": np.array([self.fit_end or np.nan])})

    def _load_weights(self, path: Path) -> None:
        state = load_arrays(path)
        if "scale" in state and np.isfinite(state["scale"][0]):  # saved before: follows no sales
            self.scale, self.fit_end = float(state["scale"][0]), float(state["fit_end"][0])


class TrendingConfig(PopularityConfig):
    half_life_days: float | None = Field(default=7.0, gt=0)


class Trending(Popularity):
    """What is selling now: popularity with a one-week half-life by default."""

    name = "trending"
    Config = TrendingConfig
    reason = "trending"
