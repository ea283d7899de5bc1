"""The ranker's exploration share for new products: lifting a row's best new candidates into reserved places by
score, so the list is still the base class's top-k of `score()` (batch == one at a time)."""

from __future__ import annotations

import numpy as np

from deepshelf.data.interactions import Histories


def lift_new(out: np.ndarray, histories: Histories, new: np.ndarray, rows: np.ndarray, items: np.ndarray,
             match: np.ndarray, slots: int, slot_rank: int) -> None:
    """Lift each row's best `slots` new candidates (`rows`, `items`: one entry per candidate, an item from two
    sources once; best by their text `match`, then by their score in `out`) into the places just above the old item
    at place `slot_rank - slots` (0-based, counted among the items outside the history), unless they already rank
    above it. `out` [B, n_items] float64 is changed in place; `new` is bool [n_items].

    The match goes first: on Online Retail's validation period it picked the new product shoppers bought twice as
    often as the learner, which has seen few new products sell (docs/benchmarks.md, "New products")."""
    if not len(rows):
        return
    B = len(histories)
    old = out.copy()
    old[:, new] = -np.inf
    old[np.repeat(np.arange(B), histories.lengths), histories.items] = -np.inf
    place = min(slot_rank - min(slots, slot_rank), old.shape[1] - 1)
    part = -np.partition(-old, (max(place - 1, 0), place), axis=1)
    low, high = part[:, place], (part[:, place - 1] if place > 0 else part[:, place] + 1.0)
    scores = out[rows, items]
    order = np.lexsort((-scores, -match, rows))
    rows, items, scores = rows[order], items[order], scores[order]
    # an item from two sources once, at its best place (np.unique gives each (row, item) key's first position)
    first = np.sort(np.unique(rows * out.shape[1] + items, return_index=True)[1])
    rows, items, scores = rows[first], items[first], scores[first]
    nth = np.arange(len(rows)) - np.searchsorted(rows, rows)  # 0 = the row's best new candidate
    pick = (nth < slots) & np.isfinite(low[rows]) & (scores <= low[rows])  # a tie would lose on index
    rows, items, nth = rows[pick], items[pick], nth[pick]
    # evenly inside (low, high), the first pick highest; in float32, the precision scores are returned in, and at
    # least one step above `low` (old items tied at `place` would otherwise win on their index)
    lo, hi = low[rows].astype(np.float32), high[rows].astype(np.float32)
    lifted = (lo + (hi - lo) * ((slots - nth) / (slots + 1))).astype(np.float32)
    out[rows, items] = np.maximum(lifted, np.nextafter(lo, np.float32(np.inf)))
