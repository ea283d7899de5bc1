"""The event and catalogue store (SQLite, PostgreSQL) at the bottom of deepshelf: it imports no other layer.

records.py (Event, Item, items_from_table), base.py (the SQL Store), sqlite.py / postgres.py (the drivers),
migrations.py (versioned schema), connect.py (open_store), urls.py, training.py (a store read as training tables).
"""

from deepshelf.storage.base import Store
from deepshelf.storage.connect import open_store
from deepshelf.storage.records import Event, Impression, Item, items_from_table
from deepshelf.storage.training import read_training_frames
from deepshelf.storage.urls import is_store_url, redact_url

__all__ = ["Event", "Impression", "Item", "Store", "is_store_url", "items_from_table", "open_store", "read_training_frames",
           "redact_url"]
