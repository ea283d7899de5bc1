"""Reading a store as training data: its events and catalogue as plain tables (the data layer validates them)."""

from __future__ import annotations

import polars as pl

from deepshelf.errors import DeepshelfError
from deepshelf.storage.connect import open_store
from deepshelf.storage.search_log import search_events
from deepshelf.storage.urls import redact_url


def read_training_frames(url: str) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """The store's events, oldest first, as a table (user, item, type, timestamp in Unix seconds), and its catalogue
    as a table (item, title, description, category, price, in_stock, image), or None when it has no items.

    Raises `DeepshelfError` when the store holds no events.
    """
    store = open_store(url)
    try:
        events = store.all_events()
        if not events:
            raise DeepshelfError(f"{redact_url(url)}: the store holds no events to train on")
        items, _ = store.list_items(limit=10**9, offset=0)
    finally:
        store.close()
    event_table = pl.DataFrame({
        "user": [e.user_id for e in events], "item": [e.item_id for e in events],
        "type": [e.type for e in events], "timestamp": [float(e.ts) for e in events],
    })
    if not items:
        return event_table, None
    catalog_table = pl.DataFrame({
        "item": [i.item_id for i in items], "title": [i.title for i in items],
        "description": [i.description for i in items], "category": [i.category for i in items],
        "price": [i.price for i in items], "in_stock": [i.in_stock for i in items],
        "image": [i.image_url for i in items],
    }, schema_overrides={"price": pl.Float64})
    return event_table, catalog_table


def read_search_log(url: str) -> pl.DataFrame:
    """The store's search log (search_log.search_events: query, item, kind, ts, shown_at), oldest first; empty
    when no search has a click yet."""
    store = open_store(url)
    try:
        return search_events(store)
    finally:
        store.close()
