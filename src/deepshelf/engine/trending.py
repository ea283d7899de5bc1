"""What a shopper the model cannot serve gets: live trending from the store, else popular of all time, else the
model's own popularity, else the newest catalogue items; and the fallback list that tops up every answer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from deepshelf.data.schema import DEFAULT_EVENT_WEIGHTS
from deepshelf.engine.catalog_view import CatalogView, Snapshot
from deepshelf.engine.rules import Rules, allowed
from deepshelf.storage import Store

TRENDING_TOP = 20_000  # trending items kept in memory; the rest of the catalogue is the fallback's tail


@dataclass
class Trending:
    """Fallback ranking over the catalogue's indices: best first, with the signal it came from."""

    order: np.ndarray  # int64 indices into the catalogue
    scores: np.ndarray  # float32
    reason: str
    item_scores: dict[int, float] = field(default_factory=dict)

    def scores_of(self, idx) -> np.ndarray:
        """float32 trending scores of catalogue indices `idx` (0 for items not trending)."""
        get = self.item_scores.get
        return np.fromiter((get(i, 0.0) for i in np.asarray(idx).tolist()), np.float32)


def compute_trending(view: CatalogView, store: Store, trending_days: float,
                     model_popularity: np.ndarray | None, now: float | None = None) -> Trending:
    """Weighted events of the last `trending_days` before `now` (Unix seconds; None: the clock) from the store,
    else of all time, else the model's own item popularity, else newest catalogue items first. A replay
    (apps/replay.py) passes the replayed day's start as `now`."""
    view.refresh()
    catalog = view.snapshot
    since = (time.time() if now is None else now) - trending_days * 86400
    for reason, start in (("trending", since), ("popular", 0.0)):
        # kept up to date by the store between refreshes, not aggregated again over the whole window each time
        rows = store.live_item_counts(reason, start, DEFAULT_EVENT_WEIGHTS, TRENDING_TOP)
        if rows:
            idx = catalog.lookup([r[0] for r in rows])
            scores = np.array([r[1] for r in rows], dtype=np.float32)
            known = idx >= 0
            idx, scores = idx[known], scores[known]
            if len(idx):
                scores = scores / max(float(scores[0]), 1e-9)
                return Trending(idx, scores, reason, dict(zip(idx.tolist(), scores.tolist())))
    if model_popularity is not None:
        order = np.argsort(-model_popularity, kind="stable")[:TRENDING_TOP]
        return Trending(order.astype(np.int64), model_popularity[order].astype(np.float32), "popular")
    order = np.argsort(-catalog.cols.added_at, kind="stable")[:TRENDING_TOP]
    return Trending(order.astype(np.int64), np.zeros(len(order), np.float32), "new_arrival")


def fallback(catalog: Snapshot, trending: Trending, need: int, rules: Rules, excluded: np.ndarray,
             skip: set[int]) -> tuple[list[int], list[float], list[str]]:
    """Up to `need` allowed items not in `skip` (which grows by them) from the trending list, then from the rest
    of the catalogue, newest first."""
    out_i, out_s, out_r = [], [], []
    # in growing chunks: the rules are checked on a few times `need` items, not the whole trending list
    start, chunk = 0, max(256, 4 * (need + len(skip)))
    while start < len(trending.order):
        order, scores = trending.order[start:start + chunk], trending.scores[start:start + chunk]
        ok = allowed(catalog, order, rules, excluded)
        for i, s in zip(order[ok].tolist(), scores[ok].tolist()):
            if i not in skip:
                out_i.append(i)
                out_s.append(s)
                out_r.append(trending.reason)
                skip.add(i)
                if len(out_i) >= need:
                    return out_i, out_s, out_r
        start, chunk = start + chunk, chunk * 4
    # The tail: anything the rules allow, newest arrivals first (vectorised over the whole catalogue).
    mask = allowed(catalog, np.arange(len(catalog)), rules, excluded)
    cand = np.flatnonzero(mask)
    cand = cand[np.argsort(-catalog.cols.added_at[cand], kind="stable")]
    for i in cand[: need + len(skip)].tolist():
        if i not in skip:
            out_i.append(i)
            out_s.append(0.0)
            out_r.append("new_arrival" if i >= catalog.n_model else "catalog")
            skip.add(i)
            if len(out_i) >= need:
                break
    return out_i, out_s, out_r
