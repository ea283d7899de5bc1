"""A loaded run's fold-in and ANN results by history, so a shopper whose history has not changed since their last
list (the next page, a reload) is not folded in and searched for again.

Keyed by the one-row history itself (its items, event types and times: everything a model's `query_vectors`
reads), so a new event is a new key and the old entry is never read again; each loaded run has its own cache (a
hot swap starts an empty one). What the rules allow is not cached: the caller filters the hits each time (stock,
price and the request's exclusions change between requests). Bounded; the least recently used go first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from deepshelf.data.interactions import Histories


class QueryCache:
    def __init__(self, capacity: int = 20_000):
        self.capacity = capacity
        self._rows: OrderedDict[bytes | tuple, dict] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    @staticmethod
    def key(histories: Histories) -> bytes | None:
        """The cache key of a one-row batch (None for another batch: not cached)."""
        if len(histories.indptr) != 2:
            return None
        parts = [np.asarray(histories.items, np.int32).tobytes()]
        for extra in (histories.types, histories.timestamps):
            parts.append(b"-" if extra is None else np.asarray(extra).tobytes())
        return b"|".join(parts)

    def _entry(self, key: bytes | tuple) -> dict:
        with self._lock:
            entry = self._rows.get(key)
            if entry is None:
                entry = self._rows[key] = {}
                while len(self._rows) > self.capacity:
                    self._rows.popitem(last=False)
            else:
                self._rows.move_to_end(key)
            return entry

    def memo(self, key: tuple, compute):
        """`compute()` once per `key` (a tuple naming what the result depends on besides the run), e.g. the
        explanations of a list for a history (`explain.because`). The result is shared: never changed in place."""
        entry = self._entry(key)
        if "value" not in entry:
            entry["value"] = compute()
        return entry["value"]

    def query(self, model, histories: Histories) -> np.ndarray:
        """`model.query_vectors(histories)` [1, d] (computed once per history)."""
        key = self.key(histories)
        if key is None:
            return model.query_vectors(histories)
        return self._query(self._entry(key), model, histories)

    @staticmethod
    def _query(entry: dict, model, histories: Histories) -> np.ndarray:
        query = entry.get("query")
        if query is None:
            query = entry["query"] = model.query_vectors(histories)
        return query

    def search(self, index, model, histories: Histories, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        """`index.search(query, fetch)` for the history's query: (idx [1, fetch], scores [1, fetch]), computed
        once per history and `fetch`."""
        key = self.key(histories)
        if key is None:
            return index.search(model.query_vectors(histories), fetch)
        entry = self._entry(key)
        hits = entry.get(fetch)
        if hits is None:
            hits = entry[fetch] = index.search(self._query(entry, model, histories), fetch)
        return hits
