"""What list answers show of each product (title, category, price, image: `Store.item_cards`), held in memory per
catalogue view, so a list with `details=true` needs no store read for the products it has shown before.

A card is dropped when the catalogue refresh brings a change to its product (`CatalogView._apply`: every upsert,
by any process, within `catalog_refresh_s`; an image upload comes with its product's upsert), with the whole cache
when the served run is swapped (a new view, a new cache), and after `max_age_s` in any case. A product without a
catalogue row is held as such, until an upsert brings it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict


class NeedsStore(Exception):
    """The answer needs a store read (a history or product cards not held, a catalogue refresh due): the caller
    on the event loop answers it again in the thread pool instead, or, when the read is `keyed` (one shopper's
    events, some products' cards: an indexed lookup) and the store is embedded (`Store.embedded`), on the loop."""

    def __init__(self, what: str, keyed: bool = False):
        super().__init__(what)
        self.keyed = keyed


class ItemCards:
    def __init__(self, store, capacity: int = 50_000, max_age_s: float = 60.0):
        self.store = store
        self.capacity = capacity
        self.max_age_s = max_age_s
        self._rows: OrderedDict[str, tuple[object | None, float]] = OrderedDict()  # id -> (ItemCard or None, when)
        self._lock = threading.Lock()
        self._generation = 0

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, item_ids, cached_only: bool = False) -> dict:
        """{item_id: ItemCard} of the given products that have a catalogue row; NeedsStore when `cached_only` and
        one is not held."""
        now = time.monotonic()
        held, missing = {}, []
        rows = self._rows
        for item_id in item_ids:
            entry = rows.get(item_id)
            if entry is None or now - entry[1] > self.max_age_s:
                missing.append(item_id)
            else:
                held[item_id] = entry[0]
        if missing:
            if cached_only:
                raise NeedsStore("product cards", keyed=True)
            generation = self._generation
            found = self.store.item_cards(missing)
            with self._lock:
                if generation == self._generation and self.capacity > 0:
                    for item_id in missing:
                        rows[item_id] = (found.get(item_id), now)
                        rows.move_to_end(item_id)
                    while len(rows) > self.capacity:
                        rows.popitem(last=False)
            held.update(found)
        return {i: c for i, c in held.items() if c is not None}

    def forget(self, item_ids) -> None:
        with self._lock:
            self._generation += 1
            for item_id in item_ids:
                self._rows.pop(item_id, None)
