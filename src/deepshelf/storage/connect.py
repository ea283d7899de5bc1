"""Opening a store by its URL."""

from __future__ import annotations

from deepshelf.errors import DeepshelfError
from deepshelf.storage.base import Store


def open_store(url: str, sqlite_synchronous: str = "FULL") -> Store:
    """A store for `url`: `sqlite:///path` or `postgresql://...` (also `postgres://`), its schema migrated."""
    if url.startswith("sqlite://"):
        from deepshelf.storage.sqlite import SQLiteStore

        return SQLiteStore(url, sqlite_synchronous)
    if url.startswith(("postgresql://", "postgres://")):
        from deepshelf.storage.postgres import PostgresStore  # psycopg is imported only for PostgreSQL stores

        return PostgresStore(url)
    raise DeepshelfError(f"database URL {url!r}: expected sqlite:///path or postgresql://user@host:port/db")
