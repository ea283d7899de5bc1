"""The catalogue columns business rules need (category, price, stock), held in memory and aligned to item indices.

Indices 0..n_model-1 are the loaded model's items (its `item_map`); catalogue items the model has never seen
(added since training) are appended after them, so one index space covers both and a new product can be
recommended before any retraining. Refreshed incrementally from the store by upsert sequence number, so
another server's upserts show up within `catalog_refresh_s`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from deepshelf.data.idmap import IdMap
from deepshelf.storage import Store


@dataclass(frozen=True)
class Columns:
    """One consistent set of arrays; replaced as a whole when items are appended."""

    ids: np.ndarray  # object [n] external ids
    category: np.ndarray  # int32 [n] code into CatalogView.categories, -1 when none
    price: np.ndarray  # float64 [n], NaN when unknown
    in_stock: np.ndarray  # bool [n]; items without a catalogue row count as in stock
    in_catalog: np.ndarray  # bool [n]
    added_at: np.ndarray  # float64 [n], upsert time of items the model does not know (0 for model items)


class CatalogView:
    def __init__(self, item_map: IdMap | None, store: Store):
        self.store = store
        model_ids = item_map.ids if item_map is not None else np.zeros(0, dtype=object)
        self.n_model = len(model_ids)
        self.index: dict[str, int] = {str(x): i for i, x in enumerate(model_ids)}
        self.categories: list[str] = []
        self.category_code: dict[str, int] = {}
        n = self.n_model
        self.cols = Columns(ids=np.asarray(model_ids, dtype=object), category=np.full(n, -1, np.int32),
                            price=np.full(n, np.nan), in_stock=np.ones(n, bool), in_catalog=np.zeros(n, bool),
                            added_at=np.zeros(n))
        self.seq = -1
        self._lock = threading.Lock()
        self._last_refresh = 0.0
        self.refresh()

    def __len__(self) -> int:
        return len(self.cols.ids)

    @property
    def n_new(self) -> int:
        return len(self) - self.n_model

    def code(self, category: str) -> int:
        code = self.category_code.get(category)
        if code is None:
            code = len(self.categories)
            self.categories.append(category)
            self.category_code[category] = code
        return code

    def lookup(self, ids) -> np.ndarray:
        get = self.index.get
        return np.fromiter((get(str(i), -1) for i in ids), dtype=np.int64)

    def refresh(self, max_age_s: float = 0.0) -> int:
        """Apply upserts newer than the last seen sequence number; returns how many rows changed.

        With `max_age_s` > 0 it does nothing when refreshed that recently (called on the request path).
        """
        now = time.monotonic()
        if max_age_s and now - self._last_refresh < max_age_s:
            return 0
        if not self._lock.acquire(blocking=not max_age_s):
            return 0  # another thread is refreshing; this request uses the current columns
        try:
            self._last_refresh = now
            # PostgreSQL hands out sequence numbers before commit, so a slow transaction can commit a lower
            # number after a higher one was seen: re-read a small overlap (applying a row twice is harmless).
            overlap = 1000 if self.store.kind == "postgresql" and self.seq > 0 else 0
            rows = self.store.catalog_columns(self.seq - overlap)
            if rows:
                self._apply(rows)
            return len(rows)
        finally:
            self._lock.release()

    def _apply(self, rows: list[tuple]) -> None:
        cols = self.cols
        new_ids = [r[0] for r in rows if r[0] not in self.index]
        new_ids = list(dict.fromkeys(new_ids))
        if new_ids:
            m = len(new_ids)
            start = len(cols.ids)
            for offset, item in enumerate(new_ids):
                self.index[item] = start + offset
            cols = Columns(
                ids=np.concatenate([cols.ids, np.asarray(new_ids, dtype=object)]),
                category=np.concatenate([cols.category, np.full(m, -1, np.int32)]),
                price=np.concatenate([cols.price, np.full(m, np.nan)]),
                in_stock=np.concatenate([cols.in_stock, np.ones(m, bool)]),
                in_catalog=np.concatenate([cols.in_catalog, np.zeros(m, bool)]),
                added_at=np.concatenate([cols.added_at, np.zeros(m)]),
            )
        idx = np.fromiter((self.index[r[0]] for r in rows), dtype=np.int64, count=len(rows))
        cols.category[idx] = np.fromiter((self.code(r[1] or "") if r[1] else -1 for r in rows), np.int32, len(rows))
        cols.price[idx] = np.array([np.nan if r[2] is None else float(r[2]) for r in rows], dtype=np.float64)
        cols.in_stock[idx] = np.fromiter((bool(r[3]) for r in rows), bool, len(rows))
        cols.in_catalog[idx] = True
        new = idx >= self.n_model
        cols.added_at[idx[new]] = np.array([float(r[5]) for r in rows], dtype=np.float64)[new]
        self.cols = cols  # one reference swap: readers see the old or the new arrays, never a mix of lengths
        self.seq = max(self.seq, max(int(r[4]) for r in rows))
