"""Between fits, a served model that describes items by their sales (`FollowsSales`: the ranker) follows the shop:
the events stored since its fit, read from the store at each live-trending refresh, are handed to it, so a product
that starts selling after the fit is ranked by those sales instead of waiting for the next retrain.

The store must hold the events the model was fit on (at least half of its last window's): a run trained on other
times than the store's (a file of last year's sales served over a store seeded with its events moved to today, as
the demo does) would take every stored event for a new sale, so such a run scores as fit.

Each refresh reads only the events with ids above the last one read. Where ids do not become visible in increasing
order (PostgreSQL allocates them before commit, so a slow transaction can commit a lower id after a higher one was
read) every event since the fit is read again every `FULL_READ_EVERY` refreshes, so such an event counts at most
that many refreshes late; after any erasure (its marker moves), at once.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from deepshelf.data.schema import DEFAULT_EVENT_WEIGHTS
from deepshelf.engine.catalog_view import CatalogView
from deepshelf.models.base import FollowsSales
from deepshelf.storage import Store

log = logging.getLogger(__name__)

READ_BATCH = 200_000  # events per read
HELD_SHARE = 0.5  # the share of the fit's last window's events the store must hold
FULL_READ_EVERY = 30  # refreshes between two full reads where ids are not in commit order (5 min at the default)


class SalesFeed:
    """The events since one model's fit, in its item indices, with the run's type weights."""

    def __init__(self, model: FollowsSales, view: CatalogView, event_weights: dict[str, float]):
        # the types the run trained on: those with a positive weight, as the run's config weighs them
        table = {**DEFAULT_EVENT_WEIGHTS, **event_weights}
        self.weights = {name: float(w) for name, w in table.items() if w > 0}
        self.model = model
        self.view = view
        self.since = float(model.fit_end)
        self._lock = threading.Lock()
        self.following: bool | None = None  # decided at the first refresh (`_store_holds_the_fit`)
        self.refreshes = 0
        self._clear()

    def _clear(self) -> None:
        self.last_id = 0
        self.marker: int | None = None
        self.items = np.zeros(0, np.int64)
        self.ts = np.zeros(0, np.float64)
        self.w = np.zeros(0, np.float64)

    @property
    def followed(self) -> int | None:
        """How many events since the fit the model scores with; None while it does not follow (not decided yet,
        or the store does not hold the run's own events)."""
        return len(self.items) if self.following else None

    def refresh(self, store: Store, now: float | None = None) -> int:
        """Read what was stored since the last call and hand the model every event since its fit, scoring as of
        `now` (Unix seconds; None: the clock; a replay passes its day's start). Returns how many it follows."""
        with self._lock:
            if self.following is None:
                self.following = self._store_holds_the_fit(store)
            if not self.following:
                return 0
            if not store.ids_in_commit_order and self.refreshes % FULL_READ_EVERY == 0:
                self._clear()
            self.refreshes += 1
            self._read(store)
            self.model.follow_sales(self.items, self.ts, self.w, time.time() if now is None else float(now))
            return len(self.items)

    def _store_holds_the_fit(self, store: Store) -> bool:
        window = self.model.fit_window()
        if window is None:
            log.info("the run's model was saved without its recent sales: it scores as fit")
            return False
        start, n = window
        held = store.count_events(start, self.since, list(self.weights))
        if held < HELD_SHARE * n:
            log.warning("the store holds %d of the %d events of the run's last days before its fit: its events are "
                        "not the ones the run was fit on, so the run scores as fit (no sales followed)", held, n)
            return False
        return True

    def _read(self, store: Store) -> None:
        while True:
            rows, marker = store.events_after(self.since, self.last_id, list(self.weights), READ_BATCH)
            if self.marker is not None and marker != self.marker:  # events were erased: read them all again
                self._clear()
                rows, marker = store.events_after(self.since, 0, list(self.weights), READ_BATCH)
            self.marker = marker
            if not rows:
                return
            self.last_id = rows[-1][0]
            idx = self.view.snapshot.lookup([r[1] for r in rows])
            ok = (idx >= 0) & (idx < self.view.n_model)  # a product added since the fit has no place in the model
            keep = np.flatnonzero(ok)
            self.items = np.concatenate([self.items, idx[keep].astype(np.int64)])
            self.ts = np.concatenate([self.ts, np.array([rows[i][3] for i in keep.tolist()], np.float64)])
            self.w = np.concatenate([self.w, np.array([self.weights[rows[i][2]] for i in keep.tolist()], np.float64)])
            if len(rows) < READ_BATCH:
                return
