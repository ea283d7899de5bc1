"""The embedded store: one SQLite file in WAL mode (readers never block the writer), `synchronous=FULL` by default.

With a timeout (the server passes `store_timeout_s`), waiting for the write lock is bounded by SQLite's busy
timeout and each statement by a progress handler that interrupts it at its deadline; both raise
`StoreUnavailable`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from deepshelf.errors import DeepshelfError
from deepshelf.storage.base import Store, StoreFull, StoreUnavailable
from deepshelf.storage.dialects import SQLITE
from deepshelf.storage.signal import ChangeSignal
from deepshelf.storage.urls import redact_url

log = logging.getLogger(__name__)

MMAP_BYTES = 1 << 30  # the first GiB of the file is read through a memory map (PRAGMA mmap_size)


class SQLiteStore(Store):
    kind = "sqlite"
    dialect = SQLITE
    ids_in_commit_order = True  # one writer at a time hands out AUTOINCREMENT ids
    embedded = True  # WAL: a reader never waits for the writer; a stalled disk is bounded by store_timeout_s

    def __init__(self, url: str, synchronous: str = "FULL", timeout_s: float | None = None):
        super().__init__(url)
        path = url.removeprefix("sqlite://")
        # sqlite:///relative.db and sqlite:////abs/path.db, as in SQLAlchemy
        self.path = Path(path[1:] if path.startswith("/") else path)
        if not path:
            raise DeepshelfError(f"database URL {redact_url(url)!r}: expected sqlite:///path/to/file.db")
        self.synchronous = synchronous
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout_s: float | None = None  # the migration runs unbounded (it may rewrite a large table)
        self._migrate()
        if timeout_s:
            self._drop_conn()  # this thread's next connection carries the timeouts
            self.timeout_s = float(timeout_s)

    @cached_property
    def changes(self) -> ChangeSignal:
        """Beside the database file, as SQLite's own -wal and -shm files: every process opening it shares it."""
        return ChangeSignal(str(self.path.resolve()), file=self.path.with_name(self.path.name + "-changes"))

    def _connect(self):
        busy = self.timeout_s if self.timeout_s is not None else 30.0
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=busy, check_same_thread=False)
        self._enter_wal(conn, busy)
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute(f"PRAGMA busy_timeout={int(busy * 1000)}")
        # Reads map the file instead of copying each page through read() into this connection's 2 MB cache: a
        # search walks doclists larger than that cache on every query, and every connection shares the one
        # mapping of the OS page cache. Writes still go through write() (SQLite's default), so durability and
        # erasure are unchanged. benchmarks/search_scale.py times the search with and without the map.
        conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        if self.timeout_s is not None:
            local = self._local  # the handler runs in the thread that owns this connection

            def past_deadline() -> bool:
                deadline = getattr(local, "deadline", None)
                return deadline is not None and time.monotonic() > deadline

            conn.set_progress_handler(past_deadline, 10_000)  # checked every 10k VM steps: a non-zero answer aborts
        return conn

    @staticmethod
    def _enter_wal(conn, busy: float) -> None:
        """Switching a new file to WAL needs an exclusive lock, and SQLite answers "locked" at once, without its busy
        handler, while another connection holds the file (servers opening one new store together): retry within the
        busy timeout. A file already in WAL answers at once."""
        deadline = time.monotonic() + busy
        pause = 0.005
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    @contextmanager
    def _bounded(self):
        """One call within the timeout; the database locked past it, or a statement interrupted at it, raises
        StoreUnavailable (any other SQLite error is the caller's)."""
        if self.timeout_s is not None:
            self._local.deadline = time.monotonic() + self.timeout_s
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text or "interrupted" in text:
                raise StoreUnavailable(f"the database did not answer: {text}") from exc
            if "is full" in text:  # SQLITE_FULL: "database or disk is full"
                self.full_disk.refused()
                raise StoreFull(f"the database's disk is full: {text}") from exc
            raise
        finally:
            self._local.deadline = None

    @contextmanager
    def _write(self):
        with self._bounded():
            conn = self._conn()
            cur = conn.cursor()
            cur.execute("BEGIN IMMEDIATE")  # take the write lock now, not at the first write, to avoid deadlocks
            try:
                yield cur
                conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (a full disk, an interrupt) can leave the transaction open: end it, so nothing
                # of the call is stored and the connection serves the next call.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self.full_disk.wrote()

    def _read(self, sql, args=()):
        with self._bounded():
            return self._conn().execute(sql, args).fetchall()

    def _bucket_expr(self) -> str:
        return "CAST(ts / ? AS INTEGER) * ?"

    def _next_seq_sql(self) -> str:
        return "(SELECT COALESCE(MAX(seq), 0) + 1 FROM items)"

    def _text_search(self, terms: list[str], limit: int, select: str) -> list[tuple]:
        # One quoted phrase (a string to FTS5, never an operator), its last word a prefix (served by the prefix
        # indexes of migration 8). First the newest matches, one more than the bound: FTS5 walks its lists by
        # rowid and stops there. Within the bound, bm25 ranks them (lower is better; column weights title,
        # description, category); past it, bm25 would first count every match of the phrase for its IDF (the
        # search's tail on a common word), so the newest matches are the answer.
        match = '"' + " ".join(terms) + '"*'
        newest = [r[0] for r in self._read("SELECT rowid FROM items_fts WHERE items_fts MATCH ? ORDER BY rowid DESC "
                                           "LIMIT ?", (match, self.search_candidates + 1))]
        if len(newest) > self.search_candidates:  # those rows, in that order (json_each: position, rowid)
            return self._read(select + " JOIN json_each(?) hit ON hit.value = i.rowid ORDER BY hit.key",
                              (json.dumps(newest[:limit]),))
        return self._read(select + " JOIN (SELECT rowid AS r, bm25(items_fts, 10.0, 1.0, 4.0) AS score FROM items_fts "
                          "WHERE items_fts MATCH ?) hit ON hit.r = i.rowid ORDER BY hit.score, i.item_id LIMIT ?",
                          (match, limit))

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
