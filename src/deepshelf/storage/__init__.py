"""The event and catalogue store (SQLite, PostgreSQL) at the bottom of deepshelf: it imports no other layer.

records.py (Event, Item, items_from_table), base.py (the SQL Store), outages.py (its errors), sqlite.py / postgres.py (the
drivers), dialects.py (what the SQL needs to know of each database), migrations.py (versioned schema), repair.py
(migration 3), connect.py (open_store), urls.py, training.py (a store read as training tables),
search_log.py (searches and the products shoppers chose from them).
"""

from deepshelf.storage.base import Store
from deepshelf.storage.outages import StoreFull, StoreUnavailable, is_outage
from deepshelf.storage.connect import open_store
from deepshelf.storage.event_ids import Duplicate, Ingested
from deepshelf.storage.records import Event, Impression, Item, items_from_table
from deepshelf.storage.training import read_search_log, read_training_frames
from deepshelf.storage.urls import is_store_url, redact_url

__all__ = ["Duplicate", "Event", "Ingested", "Impression", "Item", "Store", "StoreFull", "StoreUnavailable",
           "is_outage", "is_store_url", "items_from_table", "open_store", "read_search_log", "read_training_frames", "redact_url"]
