"""The embedded store: one SQLite file in WAL mode (readers never block the writer), `synchronous=FULL` by default."""

from __future__ import annotations

import logging
import sqlite3
from contextlib import contextmanager
from pathlib import Path

from deepshelf.errors import DeepshelfError
from deepshelf.storage.base import Store
from deepshelf.storage.migrations import SQLITE

log = logging.getLogger(__name__)


class SQLiteStore(Store):
    kind = "sqlite"
    dialect = SQLITE

    def __init__(self, url: str, synchronous: str = "FULL"):
        super().__init__(url)
        path = url.removeprefix("sqlite://")
        # sqlite:///relative.db and sqlite:////abs/path.db, as in SQLAlchemy
        self.path = Path(path[1:] if path.startswith("/") else path)
        if not path:
            raise DeepshelfError(f"database URL {url!r}: expected sqlite:///path/to/file.db")
        self.synchronous = synchronous
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    def _connect(self):
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @contextmanager
    def _write(self):
        conn = self._conn()
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")  # take the write lock now, not at the first write, to avoid deadlocks
        try:
            yield cur
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _read(self, sql, args=()):
        return self._conn().execute(sql, args).fetchall()

    def _bucket_expr(self) -> str:
        return "CAST(ts / ? AS INTEGER) * ?"

    def _next_seq_sql(self) -> str:
        return "(SELECT COALESCE(MAX(seq), 0) + 1 FROM items)"

    # ---- erasure: a deleted shopper's bytes must not stay readable in the file ------------------------------
    def _erasing(self, cur) -> None:
        cur.execute("PRAGMA secure_delete=ON")  # this connection overwrites what it deletes with zeros

    def _after_erase(self) -> None:
        conn = self._conn()
        conn.execute("PRAGMA secure_delete=OFF")
        # The WAL still holds the pages as they were before the delete; copy the new ones back and empty it. A
        # reader in progress can keep it from emptying now: then the next checkpoint overwrites those frames.
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            log.warning("erasure committed; the write-ahead log could not be emptied yet (a reader is active)")
