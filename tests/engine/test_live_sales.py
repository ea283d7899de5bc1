"""The served ranker's feed of the sales since its fit (`engine/live_sales.py`): every event after the fit's end of
the run's counted types, in the model's item indices, read incrementally from SQLite, all again after an erasure
or from a store whose ids are not in commit order."""

from __future__ import annotations

from contextlib import closing

import numpy as np
import pytest

from deepshelf.data.idmap import IdMap
from deepshelf.engine.catalog_view import CatalogView
from deepshelf.engine.live_sales import SalesFeed
from deepshelf.models.base import FollowsSales
from deepshelf.storage import Event, Item, open_store


class Recorder:
    """A model that follows sales and keeps what it was handed."""

    fit_end = 1000.0

    def __init__(self):
        self.calls: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]] = []

    def follow_sales(self, items, ts, weights, now):
        self.calls.append((np.array(items), np.array(ts), np.array(weights), now))

    def fit_window(self):
        return 0.0, 1  # its fit had one event after time 0


def handed(model: Recorder) -> list[tuple[int, float, float]]:
    items, ts, w, _ = model.calls[-1]
    return sorted(zip(items.tolist(), ts.tolist(), w.tolist()))


@pytest.mark.parametrize("in_commit_order", [True, False])
def test_the_feed_hands_every_counted_event_since_the_fit(tmp_path, in_commit_order):
    with closing(open_store(f"sqlite:///{tmp_path / 's.db'}")) as store:
        store.ids_in_commit_order = in_commit_order  # False: as PostgreSQL (read again in full now and then)
        store.upsert_items([Item(x, title=x) for x in ("a", "b", "c", "late")])
        model = Recorder()
        assert isinstance(model, FollowsSales)
        # the run counted purchases (weight 3) and carts (its default weight, 2); views weigh 0 for it
        feed = SalesFeed(model, CatalogView(IdMap(["a", "b", "c"]), store), {"purchase": 3.0, "view": 0.0})
        store.add_events([
            Event("u1", "a", "purchase", 900.0),  # before the fit's end: the model has it
            Event("u1", "b", "purchase", 1100.0),
            Event("u2", "c", "view", 1200.0),  # a type the run did not count
            Event("u2", "c", "cart", 1300.0),
            Event("u3", "late", "purchase", 1400.0),  # a product the model does not know
        ])
        assert feed.refresh(store, now=1500.0) == 2 and feed.followed == 2  # GET /v1/runs shows it
        assert handed(model) == [(1, 1100.0, 3.0), (2, 1300.0, 2.0)]
        assert model.calls[-1][3] == 1500.0
        store.add_events([Event("u4", "a", "purchase", 1600.0)])
        feed.refresh(store, now=1700.0)
        assert handed(model) == [(0, 1600.0, 3.0), (1, 1100.0, 3.0), (2, 1300.0, 2.0)]
        store.erase_user("u1")  # the erasure takes u1's sale out of what the model follows
        feed.refresh(store, now=1800.0)
        assert handed(model) == [(0, 1600.0, 3.0), (2, 1300.0, 2.0)]


def test_where_ids_are_not_in_commit_order_a_late_committed_event_counts_at_the_next_full_read(tmp_path):
    """PostgreSQL hands ids out before commit: an event committed after a higher id was read is missed by the
    incremental reads and taken in by the periodic full one."""
    from deepshelf.engine.live_sales import FULL_READ_EVERY

    with closing(open_store(f"sqlite:///{tmp_path / 's.db'}")) as store:
        store.ids_in_commit_order = False
        store.upsert_items([Item(x, title=x) for x in ("a", "b")])
        model = Recorder()
        feed = SalesFeed(model, CatalogView(IdMap(["a", "b"]), store), {})
        store.add_events([Event("u0", "a", "purchase", 900.0), Event("u1", "a", "purchase", 1100.0)])
        store.add_events([Event("u2", "b", "purchase", 1200.0)])
        late = max(r[0] for r in store.events_after(0.0, 0, ["purchase"])[0])
        store.add_events([Event("u3", "b", "purchase", 1300.0)])
        with store._write() as cur:  # id `late` is not committed yet when the first refresh reads
            cur.execute("DELETE FROM events WHERE id = ?", (late,))
        feed.refresh(store, now=1400.0)
        assert handed(model) == [(0, 1100.0, 4.0), (1, 1300.0, 4.0)]
        with store._write() as cur:  # ... and commits now, below the last id read
            cur.execute("INSERT INTO events (id, user_id, item_id, type, ts) VALUES (?, 'u2', 'b', 'purchase', "
                        "1200.0)", (late,))
        for _ in range(FULL_READ_EVERY - 1):
            feed.refresh(store, now=1400.0)
        assert handed(model) == [(0, 1100.0, 4.0), (1, 1300.0, 4.0)]  # the incremental reads miss it
        feed.refresh(store, now=1400.0)
        assert handed(model) == [(0, 1100.0, 4.0), (1, 1200.0, 4.0), (1, 1300.0, 4.0)]


def test_a_served_ranker_follows_the_store_at_each_trending_refresh(tmp_path):
    """Through the engine: a run whose model follows sales gets a feed at load, refreshed with live trending."""
    from deepshelf.engine.holder import refresh_trending
    from deepshelf.engine.loaded import LoadedRun
    from deepshelf.engine.settings import Settings

    with closing(open_store(f"sqlite:///{tmp_path / 's.db'}")) as store:
        store.upsert_items([Item(x, title=x) for x in ("a", "b")])
        model = Recorder()
        view = CatalogView(IdMap(["a", "b"]), store)
        state = LoadedRun(None, None, None, None, model, view, sales=SalesFeed(model, view, {}))
        store.add_events([Event("u2", "a", "purchase", 900.0), Event("u1", "b", "purchase", 2000.0)])
        refresh_trending(state, store, Settings())
        assert handed(model) == [(1, 2000.0, 4.0)]


def test_a_store_without_the_runs_own_events_is_not_followed(tmp_path):
    """A run fit on other times than the store's (the demo's store holds its dataset moved to today) would take
    every stored event for a sale since the fit: it scores as fit instead."""
    with closing(open_store(f"sqlite:///{tmp_path / 's.db'}")) as store:
        store.upsert_items([Item("a", title="a")])
        model = Recorder()
        feed = SalesFeed(model, CatalogView(IdMap(["a"]), store), {})
        store.add_events([Event("u1", "a", "purchase", 5000.0)])  # nothing from before the fit's end
        assert feed.refresh(store, now=6000.0) == 0 and not model.calls and feed.followed is None
