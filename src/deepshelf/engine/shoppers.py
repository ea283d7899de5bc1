"""Shoppers' histories held in memory per server process, so a shopper's list is answered without a store read
(and so on the event loop, without a thread-pool hop) while their history has not changed.

An entry is the `Shopper` one request built from the store (catalogue indices of the view it was looked up in).
It is dropped:
- at once, for the shoppers of events this process stores and for a shopper this process erases;
- within `poll_s`, for the shoppers of events any other process stored (`Store.event_changes`: the events with an id
  above the last one seen; on PostgreSQL, whose ids are handed out before commit, a window of the last
  `PG_OVERLAP` ids is read again and ids not seen before count), and all of them when any shopper is erased;
- all of them when the served run is swapped (`clear`), and any one older than `max_age_s` (a bound on what no
  signal covers, such as events repaired or deleted by hand);
- when it names an item the catalogue did not know and the catalogue has grown since.
A history read from the store while one of those signals arrived is answered but not kept (`generation`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from deepshelf.engine.cards import NeedsStore  # noqa: F401  (raised by the service where this cache misses)
from deepshelf.engine.catalog_view import Snapshot
from deepshelf.engine.ranking import Shopper

PG_OVERLAP = 1000  # ids re-read on PostgreSQL, where a transaction may commit a lower id after a higher one is seen


@dataclass(frozen=True)
class _Entry:
    view: object  # the CatalogView the indices belong to
    size: int  # the snapshot's length when looked up
    unknown: bool  # some event names an item the snapshot did not know
    shopper: Shopper
    at: float  # time.monotonic() of the store read


class ShopperCache:
    def __init__(self, store, capacity: int, max_age_s: float):
        self.store = store
        self.capacity = capacity
        self.max_age_s = max_age_s
        self._rows: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.generation = 0  # moves on every drop: a read that saw it move is not kept
        self._last_id: int | None = None
        self._seen: set[int] = set()  # PostgreSQL: ids within the overlap window already applied
        self._erasures: int | None = None
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, user_id: str, view, catalog: Snapshot) -> Shopper | None:
        entry = self._rows.get(user_id)
        if entry is None or entry.view is not view or time.monotonic() - entry.at > self.max_age_s or (
                entry.unknown and len(catalog) != entry.size):
            self.misses += 1
            return None
        self.hits += 1
        return entry.shopper

    def put(self, user_id: str, view, catalog: Snapshot, shopper: Shopper, generation: int, at: float) -> None:
        """Keep a history read from the store when nothing was dropped since the read began (`generation`)."""
        if self.capacity <= 0:
            return
        entry = _Entry(view, len(catalog), bool((shopper.items < 0).any()), shopper, at)
        with self._lock:
            if generation != self.generation:
                return
            self._rows[user_id] = entry
            self._rows.move_to_end(user_id)
            while len(self._rows) > self.capacity:
                self._rows.popitem(last=False)

    def drop(self, user_ids) -> None:
        with self._lock:
            self.generation += 1
            for user_id in user_ids:
                self._rows.pop(user_id, None)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._rows.clear()

    def poll(self) -> None:
        """Drop the shoppers of the events stored since the last poll (by any process), everyone after an
        erasure (in the background, every `poll_s`)."""
        overlap = PG_OVERLAP if self.store.kind == "postgresql" else 0
        if self._last_id is None:  # the first poll: where the event log stands
            self._last_id = self.store.event_changes(None)[0]
            _, rows, self._erasures = self.store.event_changes(max(0, self._last_id - overlap))
            self._seen = {i for i, _ in rows} if overlap else set()
            self._last_id = max([self._last_id] + [i for i, _ in rows])
            self.clear()  # events may have come before it
            return
        _, rows, erasures = self.store.event_changes(max(0, self._last_id - overlap))
        if self._erasures is not None and erasures != self._erasures:
            self.clear()
        self._erasures = erasures
        fresh = [(i, u) for i, u in rows if i not in self._seen and (overlap or i > self._last_id)]
        if fresh:
            self.drop({u for _, u in fresh})
        if rows:
            self._last_id = max(self._last_id, rows[-1][0])
        if overlap:
            floor = self._last_id - overlap
            self._seen = {i for i in self._seen if i > floor} | {i for i, _ in fresh}
