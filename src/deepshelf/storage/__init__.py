"""The event and catalogue store (SQLite, PostgreSQL) at the bottom of deepshelf: it imports no other layer."""

from deepshelf.storage.store import Event, Item, Store, load_training_data, open_store

__all__ = ["Event", "Item", "Store", "load_training_data", "open_store"]
