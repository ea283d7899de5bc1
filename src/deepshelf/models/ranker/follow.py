"""The ranker between fits: it follows the shop's sales since its fit (`engine/live_sales.py` hands them over), so
its item statistics and popularity generators describe the shop as a refit at that moment would, while the learner,
co-purchase and the other generators stay as fit (README, "Sales since the fit")."""

from __future__ import annotations

import numpy as np

from deepshelf.data.interactions import Interactions
from deepshelf.models.ranker.features import DAY, WINDOWS, ShopStats


class FollowsShopSales:
    """Mixed into `Ranker`, which sets `stats` (the fit's), `recent` (the fit's own events of the longest window:
    item indices and Unix seconds; None for a ranker saved before it could follow), `live`, `generators` and
    `session` (models.base.FollowsSales is the protocol the engine checks)."""

    stats: ShopStats | None
    recent: tuple[np.ndarray, np.ndarray] | None
    live: ShopStats | None

    def keep_recent(self, inter: Interactions) -> None:
        """Keep the fit's own events of the longest window (what `ShopStats.advanced` slides over) and drop what
        an earlier fit followed."""
        recent = inter.timestamp > inter.timestamp.max() - max(WINDOWS) * DAY
        self.recent = (inter.item[recent].astype(np.int32), inter.timestamp[recent].astype(np.float64))
        self.live = None

    @property
    def item_stats(self) -> ShopStats:
        """The item statistics scoring reads: as of the latest `follow_sales`, else the fit's."""
        live = self.live
        return self.stats if live is None else live

    @property
    def fit_end(self) -> float:
        """The newest event the model was fit on (Unix seconds)."""
        return float(self.stats.now[0])

    def fit_window(self) -> tuple[float, int] | None:
        """(start, n): the fit's events later than `start` (the longest window before `fit_end`), n of them."""
        if self.recent is None:
            return None
        return self.fit_end - max(WINDOWS) * DAY, len(self.recent[0])

    def follow_sales(self, items: np.ndarray, ts: np.ndarray, weights: np.ndarray, now: float) -> None:
        """Between fits, score as of `now` with the shop's sales since the fit: `items` / `ts` / `weights` are
        every event after `fit_end` (item indices, Unix seconds, the run's type weights), all of them at each
        call. The item statistics (sales per window, trends, age, last sale) and the popularity generators
        (trending) then describe the shop as a refit would see it, so a product that starts selling after the fit
        is ranked by its sales; the learner, co-purchase and the other generators stay as fit. No events (or a
        ranker saved before this existed): the fit's own statistics."""
        if self.recent is None or not len(items):
            live = None
        else:
            live = self.stats.advanced(*self.recent, items, ts, now)
        self.generators.follow(items, ts, weights, now)
        if self.session is not None:
            self.session.follow(items, ts, weights, now, live)
        self.live = live
