"""Opening a store by its URL."""

from __future__ import annotations

from deepshelf.errors import DeepshelfError
from deepshelf.storage.base import Store
from deepshelf.storage.sqlite import SQLiteStore
from deepshelf.storage.urls import redact_url


def open_store(url: str, sqlite_synchronous: str = "FULL", timeout_s: float | None = None,
               connections: int | None = None) -> Store:
    """A store for `url`: `sqlite:///path` or `postgresql://...` (also `postgres://`), its schema migrated.

    `timeout_s` bounds every call after the migration (connecting, waiting for one of at most `connections`
    PostgreSQL connections, each statement; SQLite's busy wait and each statement); a call past it raises
    `StoreUnavailable` (storage/base.py). None (the default, for training and batch jobs): no bound.
    """
    if url.startswith("sqlite://"):
        return SQLiteStore(url, sqlite_synchronous, timeout_s)
    if url.startswith(("postgresql://", "postgres://")):
        from deepshelf.storage.postgres import PostgresStore  # psycopg is imported only for PostgreSQL stores

        return PostgresStore(url, timeout_s, connections)
    raise DeepshelfError(f"database URL {redact_url(url)!r}: expected sqlite:///path or "
                         "postgresql://user@host:port/db")
