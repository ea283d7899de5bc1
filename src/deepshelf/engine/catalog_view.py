"""The catalogue columns business rules need (category, price, stock), held in memory and aligned to item indices.

Indices 0..n_model-1 are the loaded model's items (its `item_map`); catalogue items the model has never seen
(added since training) are appended after them, so one index space covers both and a new product can be
recommended before any retraining. Refreshed incrementally from the store by upsert sequence number, so
another server's upserts show up within `catalog_refresh_s`.

Readers take one `Snapshot` (`view.snapshot`) per request and use only it: a refresh builds a new snapshot and
publishes it with one reference assignment, so a reader never pairs an id lookup with columns of another size.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from deepshelf.data.idmap import IdMap
from deepshelf.engine.cards import ItemCards
from deepshelf.storage import Store


@dataclass(frozen=True)
class Columns:
    """One consistent set of arrays, never written after it is published."""

    ids: np.ndarray  # object [n] external ids
    category: np.ndarray  # int32 [n] code into the snapshot's categories, -1 when none
    price: np.ndarray  # float64 [n], NaN when unknown
    in_stock: np.ndarray  # bool [n]; items without a catalogue row count as in stock
    in_catalog: np.ndarray  # bool [n]
    added_at: np.ndarray  # float64 [n], upsert time of items the model does not know (0 for model items)


@dataclass(frozen=True)
class Snapshot:
    """The catalogue as one request sees it.

    `index` and `categories` / `category_code` are shared between snapshots and only ever appended to (an id
    keeps its index, a category its code), so each snapshot bounds them by its own size: an id or code added
    after this snapshot was published reads as unknown here.
    """

    cols: Columns
    n_model: int
    index: dict[str, int]
    categories: list[str]
    category_code: dict[str, int]
    n_categories: int

    def __len__(self) -> int:
        return len(self.cols.ids)

    @property
    def n_new(self) -> int:
        return len(self) - self.n_model

    def position(self, item_id: str) -> int:
        """The index of one external id, -1 when unknown."""
        i = self.index.get(item_id, -1)
        return i if i < len(self) else -1

    def lookup(self, ids) -> np.ndarray:
        """int64 indices of external ids, -1 for unknown ones."""
        get = self.index.get
        idx = np.fromiter((get(str(i), -1) for i in ids), dtype=np.int64)
        idx[idx >= len(self)] = -1
        return idx

    def code(self, category: str) -> int | None:
        code = self.category_code.get(category)
        return code if code is not None and code < self.n_categories else None

    def category_name(self, code: int) -> str:
        return self.categories[code]


class CatalogView:
    def __init__(self, item_map: IdMap | None, store: Store):
        self.store = store
        self.cards = ItemCards(store)  # what list answers show of each product, dropped as the refresh brings changes
        model_ids = item_map.ids if item_map is not None else np.zeros(0, dtype=object)
        self.n_model = len(model_ids)
        self._index: dict[str, int] = {str(x): i for i, x in enumerate(model_ids)}
        self._categories: list[str] = []
        self._category_code: dict[str, int] = {}
        n = self.n_model
        cols = Columns(ids=np.asarray(model_ids, dtype=object), category=np.full(n, -1, np.int32),
                       price=np.full(n, np.nan), in_stock=np.ones(n, bool), in_catalog=np.zeros(n, bool),
                       added_at=np.zeros(n))
        self.snapshot = self._publish(cols)
        self.seq = -1
        self._lock = threading.Lock()
        self._last_refresh = 0.0
        self.refresh()

    def __len__(self) -> int:
        return len(self.snapshot)

    @property
    def n_new(self) -> int:
        return self.snapshot.n_new

    def _publish(self, cols: Columns) -> Snapshot:
        return Snapshot(cols, self.n_model, self._index, self._categories, self._category_code,
                        len(self._categories))

    def _code(self, category: str) -> int:
        code = self._category_code.get(category)
        if code is None:
            code = len(self._categories)
            self._categories.append(category)  # the list before the dict: a reader that finds a code finds its name
            self._category_code[category] = code
        return code

    def due(self, max_age_s: float) -> bool:
        """Whether `refresh(max_age_s)` would read the store now."""
        return time.monotonic() - self._last_refresh >= max_age_s

    def refresh(self, max_age_s: float = 0.0) -> int:
        """Apply upserts newer than the last seen sequence number; returns how many rows changed.

        With `max_age_s` > 0 it does nothing when refreshed that recently (called on the request path).
        """
        now = time.monotonic()
        if max_age_s and now - self._last_refresh < max_age_s:
            return 0
        if not self._lock.acquire(blocking=not max_age_s):
            return 0  # another thread is refreshing; this request uses the current snapshot
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
        """Build the next snapshot from `rows` (id, category, price, in_stock, seq, added_at) and publish it."""
        old = self.snapshot.cols
        start = len(old.ids)
        new_ids = list(dict.fromkeys(r[0] for r in rows if r[0] not in self._index))
        m = len(new_ids)
        # Copies, never writes into the published arrays: readers keep using them while this runs.
        cols = Columns(
            ids=np.concatenate([old.ids, np.asarray(new_ids, dtype=object)]),
            category=np.concatenate([old.category, np.full(m, -1, np.int32)]),
            price=np.concatenate([old.price, np.full(m, np.nan)]),
            in_stock=np.concatenate([old.in_stock, np.ones(m, bool)]),
            in_catalog=np.concatenate([old.in_catalog, np.zeros(m, bool)]),
            added_at=np.concatenate([old.added_at, np.zeros(m)]),
        )
        positions = {item: start + offset for offset, item in enumerate(new_ids)}
        get = self._index.get
        idx = np.fromiter((get(r[0], -1) if r[0] not in positions else positions[r[0]] for r in rows),
                          dtype=np.int64, count=len(rows))
        cols.category[idx] = np.fromiter((self._code(r[1]) if r[1] else -1 for r in rows), np.int32, len(rows))
        cols.price[idx] = np.array([np.nan if r[2] is None else float(r[2]) for r in rows], dtype=np.float64)
        cols.in_stock[idx] = np.fromiter((bool(r[3]) for r in rows), bool, len(rows))
        cols.in_catalog[idx] = True
        new = idx >= self.n_model
        cols.added_at[idx[new]] = np.array([float(r[5]) for r in rows], dtype=np.float64)[new]
        # The shared id index grows before the snapshot that covers the new ids is published; older snapshots
        # bound it by their own size.
        self._index.update(positions)
        self.snapshot = self._publish(cols)
        self.seq = max(self.seq, max(int(r[4]) for r in rows))
        self.cards.forget(r[0] for r in rows)
