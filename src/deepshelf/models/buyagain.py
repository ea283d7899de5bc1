"""Buy again: the shopper's own items, scored by how often and how recently they bought them."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from deepshelf.data.interactions import Histories, Interactions
from deepshelf.models.base import ModelConfig, Recommender


class BuyAgainConfig(ModelConfig):
    # An event's weight halves every `half_life_days` before the shopper's newest event (timestamped histories).
    half_life_days: float = Field(default=30.0, gt=0)
    # Without timestamps, it halves every `half_life_events` positions before the newest event.
    half_life_events: float = Field(default=10.0, gt=0)
    # Items outside the history are ordered by popularity, scaled below every bought item's score.
    popularity_weight: float = Field(default=0.5, gt=0, lt=1)


def decayed_counts(histories: Histories, n_items: int, half_life_days: float,
                   half_life_events: float) -> np.ndarray:
    """[B, n_items] float64: each history's events summed with weight 2^(-age / half-life) (frequency × recency).

    The age is counted from the row's newest event (days when the batch has timestamps, else positions), so
    the order within a row does not depend on when it is scored.
    """
    B, n = len(histories), len(histories.items)
    row = np.repeat(np.arange(B), histories.lengths)
    if histories.timestamps is not None:
        newest = np.zeros(B, np.int64)
        if n:
            newest = np.maximum.reduceat(histories.timestamps, np.minimum(histories.indptr[:-1], max(n - 1, 0)))
        age = (newest[row] - histories.timestamps) / (86400.0 * half_life_days)
    else:
        age = (histories.indptr[1:][row] - 1 - np.arange(n)) / half_life_events
    weight = np.exp2(-age)
    out = np.zeros((B, n_items), np.float64)
    np.add.at(out, (row, histories.items), weight)
    return out


class BuyAgain(Recommender):
    """score = 1 + Σ over the shopper's events of the item 2^(-age/half-life); other items: a popularity tie-break.

    Every bought item scores above 1, every other item below `popularity_weight` < 1, so the shopper's own items
    come first, the most often and most recently bought at the top.
    """

    name = "buyagain"
    Config = BuyAgainConfig
    reason = "bought_before"

    def _fit(self, train: Interactions, catalog, validation) -> None:
        pass  # the popularity tie-break is kept by the base class

    def score(self, histories: Histories) -> np.ndarray:
        cfg = self.config
        counts = decayed_counts(histories, self.n_items, cfg.half_life_days, cfg.half_life_events)
        out = np.where(counts > 0, 1.0 + counts, cfg.popularity_weight * self.item_popularity[None, :])
        return out.astype(np.float32)

    def _save_weights(self, path) -> None:
        pass  # nothing beyond the config and the popularity the base class saves

    def _load_weights(self, path) -> None:
        pass
