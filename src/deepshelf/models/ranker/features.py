"""Stage 2 inputs: what a shop's own data says about an item, a shopper, and the pair, at one point in time.

Everything is computed from the events the stats were built on (never later ones), so features for a label
period see nothing of it. Unknown values are NaN (LightGBM routes them; the torch ranker imputes them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from deepshelf.data.catalog import Catalog
from deepshelf.data.interactions import Histories, Interactions
from deepshelf.models.ranker.generators import Candidates

DAY = 86400.0
WINDOWS = (1, 7, 30)  # days of recent sales an item is described by

ITEM_FEATURES = ["sales_1d", "sales_7d", "sales_30d", "sales_all", "trend_1_7", "trend_7_30", "age_days",
                 "new_30d", "last_sale_days", "buyers", "price"]
SHOPPER_FEATURES = ["shopper_events", "shopper_items", "shopper_days", "shopper_recency_days", "shopper_spend",
                    "shopper_price"]
PAIR_FEATURES = ["times_bought", "days_since_bought", "price_ratio", "copurchase_last1", "copurchase_last5",
                 "category_share", "text_last5"]
TIME_FEATURES = ["day_of_week", "month"]


def feature_names(generator_labels: list[str], time_features: bool) -> list[str]:
    gen = [f"{g}_{kind}" for g in generator_labels for kind in ("score", "z", "rank")]
    return gen + ITEM_FEATURES + SHOPPER_FEATURES + PAIR_FEATURES + (TIME_FEATURES if time_features else [])


@dataclass
class ShopStats:
    """Per-item facts at time `now` (the newest event they were built from), plus the catalogue's price/category."""

    now: np.ndarray  # int64 [1] Unix seconds (or position for timeless data)
    item: np.ndarray  # float32 [n_items, len(ITEM_FEATURES)]
    price: np.ndarray  # float32 [n_items], NaN where unknown
    category: np.ndarray  # int64 [n_items], -1 where none

    @classmethod
    def build(cls, inter: Interactions, catalog: Catalog | None) -> "ShopStats":
        n = inter.n_items
        now = int(inter.timestamp.max())
        age = (now - inter.timestamp) / DAY
        sales = [np.bincount(inter.item, weights=(age < w).astype(np.float64), minlength=n) for w in WINDOWS]
        total = np.bincount(inter.item, minlength=n).astype(np.float64)
        first = np.full(n, np.inf)
        np.minimum.at(first, inter.item, inter.timestamp.astype(np.float64))
        last = np.full(n, -np.inf)
        np.maximum.at(last, inter.item, inter.timestamp.astype(np.float64))
        buyers = np.asarray(inter.to_csr(binary=True).sum(axis=0)).ravel()
        price = np.full(n, np.nan)
        category = np.full(n, -1, np.int64)
        if catalog is not None:
            # prices from the sales up to `now` (a label window's features: before its start), where the
            # catalogue has them; a catalogue without sales is as of now
            catalog = catalog.as_of(now + 1)
            price = catalog.column_for(inter.item_map, "price", fill=np.nan).astype(np.float64)
            names = catalog.column_for(inter.item_map, "category", fill="").astype(str)
            values, codes = np.unique(names, return_inverse=True)
            category = np.where(names == "", -1, codes)
        item = _item_facts(sales, total, first, last, now, buyers, price)
        return cls(np.array([now], np.int64), item, price.astype(np.float32), category)

    def advanced(self, recent_items: np.ndarray, recent_ts: np.ndarray, items: np.ndarray, ts: np.ndarray,
                 now: float) -> "ShopStats":
        """The same facts at `now`, after events `items` / `ts` that came after these stats' time (the served
        shop's sales between fits), given `recent_*`: the events these stats were built from within the longest
        window before their time. What `build` over both sets of events gives with the clock at `now`, but for
        `buyers` (distinct shoppers need every shopper's past: it stays as built)."""
        idx = {name: i for i, name in enumerate(ITEM_FEATURES)}
        then = float(self.now[0])
        old = self.item.astype(np.float64)
        n = len(old)
        ts = np.asarray(ts, np.float64)
        keep = ts <= now
        items, ts = np.asarray(items, np.int64)[keep], ts[keep]
        every_item = np.concatenate([np.asarray(recent_items, np.int64), items])
        age = (now - np.concatenate([np.asarray(recent_ts, np.float64), ts])) / DAY
        sales = [np.bincount(every_item, weights=(age < w).astype(np.float64), minlength=n) for w in WINDOWS]
        total = old[:, idx["sales_all"]] + np.bincount(items, minlength=n)
        first = then - old[:, idx["age_days"]] * DAY  # NaN: not sold by then
        last = then - old[:, idx["last_sale_days"]] * DAY
        new_first = np.full(n, np.inf)
        np.minimum.at(new_first, items, ts)
        new_last = np.full(n, -np.inf)
        np.maximum.at(new_last, items, ts)
        first = np.where(np.isnan(first), new_first, np.minimum(first, new_first))
        last = np.where(np.isnan(last), new_last, np.maximum(last, new_last))
        item = _item_facts(sales, total, first, last, now, old[:, idx["buyers"]], old[:, idx["price"]])
        return ShopStats(np.array([int(now)], np.int64), item, self.price, self.category)

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}{k}": getattr(self, k) for k in ("now", "item", "price", "category")}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], prefix: str) -> "ShopStats":
        return cls(*(state[f"{prefix}{k}"] for k in ("now", "item", "price", "category")))


def _item_facts(sales: list[np.ndarray], total: np.ndarray, first: np.ndarray, last: np.ndarray, now: float,
                buyers: np.ndarray, price: np.ndarray) -> np.ndarray:
    """float32 [n_items, len(ITEM_FEATURES)] from the sales per window, all-time counts, first and last sale
    (inf / -inf: never sold) at `now`."""
    sold = np.isfinite(first)
    age_days = np.where(sold, (now - first) / DAY, np.nan)
    s1, s7, s30 = sales
    return np.column_stack([
        s1, s7, s30, total,
        (s1 + 1) / (s7 / 7 + 1), (s7 + 1) / (s30 * 7 / 30 + 1),  # trends: this window against the longer one
        age_days, np.where(sold, age_days < 30, np.nan), np.where(sold, (now - last) / DAY, np.nan), buyers, price,
    ]).astype(np.float32)


def build_features(histories: Histories, cand: Candidates, stats: ShopStats, copurchase: sp.csr_matrix,
                   text: np.ndarray | None = None, time_features: bool = False) -> np.ndarray:
    """float32 [C, F] in the order of `feature_names`: one row per candidate (row, item) of `cand`.

    `copurchase` is the [n_items, n_items] item-to-item similarity; `text` optional unit item vectors [n_items, d].
    """
    B, n = len(histories), len(stats.price)
    rows, items = cand.rows, cand.items
    ev_row = np.repeat(np.arange(B), histories.lengths)
    has_ts = histories.timestamps is not None
    # "now" per history: the stats' time, or the history's newest event when it is later (scoring while serving)
    now = np.full(B, float(stats.now[0]))
    if has_ts and len(ev_row):
        np.maximum.at(now, ev_row, histories.timestamps.astype(np.float64))
    # the shopper
    events = histories.lengths.astype(np.float64)
    counts = histories.to_csr(n)
    distinct = np.diff(counts.indptr).astype(np.float64)
    ev_price = stats.price[histories.items].astype(np.float64)
    known = np.isfinite(ev_price)
    spend = np.bincount(ev_row, weights=np.where(known, ev_price, 0.0), minlength=B)
    n_priced = np.bincount(ev_row, weights=known.astype(np.float64), minlength=B)
    usual_price = np.where(n_priced > 0, spend / np.maximum(n_priced, 1), np.nan)
    if has_ts:
        ev_time = histories.timestamps.astype(np.float64)
        day_keys = np.unique(ev_row * 1_000_000 + np.floor(ev_time / DAY))
        days = np.bincount((day_keys // 1_000_000).astype(np.int64), minlength=B).astype(np.float64)
    else:
        ev_time = (np.arange(len(ev_row)) - histories.indptr[:-1][ev_row]).astype(np.float64)
        days = events.copy()  # positions: only the order is known
    newest = np.full(B, np.nan)
    if len(ev_row):
        newest_t = np.full(B, -np.inf)
        np.maximum.at(newest_t, ev_row, ev_time)
        newest = np.where(events > 0, newest_t, np.nan)
    recency = (now - newest) / DAY if has_ts else np.zeros(B)
    # the pair
    last_bought = np.full((B, n), -np.inf)
    np.maximum.at(last_bought, (ev_row, histories.items), ev_time)
    lb = last_bought[rows, items]
    if has_ts:
        since = np.where(np.isfinite(lb), (now[rows] - lb) / DAY, np.nan)
    else:  # events ago
        since = np.where(np.isfinite(lb), histories.lengths[rows] - 1 - lb, np.nan)
    times = np.asarray(counts[rows, items]).ravel() if len(rows) else np.zeros(0)
    item_price = stats.price[items]
    copurchase1 = (histories.last_items(n, 1) @ copurchase).toarray()[rows, items]
    last5 = histories.last_items(n, 5)
    copurchase5 = (last5 @ copurchase).toarray()[rows, items]
    category_share = np.full(len(rows), np.nan)
    if (stats.category >= 0).any():
        n_cat = int(stats.category.max()) + 1
        ev_cat = stats.category[histories.items]
        ok = ev_cat >= 0
        per_cat = np.zeros((B, n_cat))
        np.add.at(per_cat, (ev_row[ok], ev_cat[ok]), 1.0)
        cat = stats.category[items]
        category_share = np.where(cat >= 0, per_cat[rows, np.maximum(cat, 0)] / np.maximum(events[rows], 1), np.nan)
    text_sim = np.full(len(rows), np.nan)
    if text is not None:
        # cosine of the item to the mean vector of the shopper's last five items
        profile = np.asarray(last5 @ text)
        norm = np.linalg.norm(profile, axis=1, keepdims=True)
        profile = profile / np.maximum(norm, 1e-9)
        text_sim = np.einsum("cd,cd->c", profile[rows], text[items])
    when = now[rows]
    dow = np.floor(when / DAY + 3) % 7 if has_ts else np.full(len(rows), np.nan)  # 1970-01-01 was a Thursday
    month = np.floor((when / DAY % 365.25) / 30.44) if has_ts else np.full(len(rows), np.nan)
    shopper = np.column_stack([events, distinct, days, recency, spend, usual_price])[rows]
    pair = np.column_stack([times, since, item_price / shopper[:, 5], copurchase1, copurchase5, category_share,
                            text_sim])
    parts = [np.stack([cand.scores, cand.zscores, cand.ranks], axis=2).reshape(len(rows), -1),
             stats.item[items], shopper, pair] + ([np.column_stack([dow, month])] if time_features else [])
    return np.concatenate(parts, axis=1).astype(np.float32)
