"""The server store: PostgreSQL through psycopg 3; many server processes may share one database.

Imported only for `postgresql://` URLs (see connect.py), so SQLite users need no psycopg.

With a timeout (the server passes `store_timeout_s`), no call waits longer than it for the database: connecting
is bounded by `connect_timeout`, a free connection (at most `connections`) by a semaphore, a statement by the
server's `statement_timeout` and, for a server that does not answer at all (stopped, network gone: then it cannot
cancel anything), by a watchdog that shuts the call's socket at its deadline. Each of these raises
`StoreUnavailable`.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from contextlib import contextmanager, nullcontext

import psycopg
import psycopg.errors

from deepshelf.errors import DeepshelfError
from deepshelf.storage.base import Store, StoreFull, StoreUnavailable
from deepshelf.storage.dialects import POSTGRES
from deepshelf.storage.urls import redact, redact_url


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class _Watchdog:
    """Cuts the connection of a call still running at its deadline (one thread per store, started on first use)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._calls: dict[object, tuple[float, psycopg.Connection]] = {}
        self._wakes_at = math.inf  # when the thread will next look; a later deadline needs no wake-up
        self._thread: threading.Thread | None = None
        self._closed = False

    @contextmanager
    def guard(self, conn: psycopg.Connection, deadline: float):
        token = object()
        with self._cond:
            self._calls[token] = (deadline, conn)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deepshelf-store-watchdog", daemon=True)
                self._thread.start()
            elif deadline < self._wakes_at:
                self._cond.notify()
        try:
            yield
        finally:
            # Under the lock: once this returns the watchdog never touches `conn`, so the caller may close it
            # (and its socket number be reused) safely.
            with self._cond:
                self._calls.pop(token, None)

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                for token, (deadline, conn) in list(self._calls.items()):
                    if deadline <= now:
                        del self._calls[token]
                        _cut(conn)
                self._wakes_at = min((d for d, _ in self._calls.values()), default=math.inf)
                self._cond.wait(None if self._wakes_at == math.inf else max(0.0, self._wakes_at - now))

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()


def _cut(conn: psycopg.Connection) -> None:
    """Shut the connection's socket: the call blocked on it fails at once with OperationalError."""
    try:
        fd = conn.pgconn.socket  # raises when libpq has already dropped the connection
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, psycopg.Error):
        pass


class PostgresStore(Store):
    kind = "postgresql"
    dialect = POSTGRES

    def __init__(self, url: str, timeout_s: float | None = None, connections: int | None = None):
        super().__init__(url)
        self.timeout_s: float | None = None  # the migration runs unbounded (it may rewrite a large table)
        self._idle: list[psycopg.Connection] = []  # pooled connections, most recently used last
        self._slots = threading.BoundedSemaphore(connections) if connections else None
        self._watchdog: _Watchdog | None = None
        try:
            self._migrate()
        except (psycopg.OperationalError, StoreUnavailable) as exc:
            raise DeepshelfError(f"cannot connect to {redact_url(url)}: {redact(_first_line(exc), url)}") from None
        if timeout_s:
            self._close_idle()  # connections opened from now on carry the statement timeout
            self.timeout_s = float(timeout_s)
            self._watchdog = _Watchdog()

    def _connect(self):
        if self.timeout_s is None:
            options = {}
        else:  # libpq counts connect_timeout in whole seconds, at least 2
            options = {"connect_timeout": max(2, math.ceil(self.timeout_s)),
                       "options": f"-c statement_timeout={int(self.timeout_s * 1000)}"}
        try:
            return psycopg.connect(self.url, autocommit=True, **options)
        except psycopg.ProgrammingError as exc:  # libpq cannot parse the URL; its message may quote the password
            raise DeepshelfError(f"database URL {redact_url(self.url)!r}: {redact(_first_line(exc), self.url)}") \
                from None

    def _close_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            self._discard(conn)

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.close()
        with self._lock:
            self._idle = []
        super().close()

    @contextmanager
    def _session(self):
        """A pooled connection for one call, within the store's timeout; a failure of the database (or the
        deadline) raises StoreUnavailable with `.reused` telling whether the connection had served before."""
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        if self._slots is not None and not self._slots.acquire(timeout=self.timeout_s or -1):
            raise StoreUnavailable(f"no free connection to the database within {self.timeout_s:g} s")
        conn, reused = None, False
        try:
            with self._lock:
                while self._idle and conn is None:
                    conn = self._idle.pop()
                    if conn.closed or conn.broken:
                        conn = None
            reused = conn is not None
            if conn is None:
                conn = self._connect()
                with self._lock:
                    self._all_conns.append(conn)
            with self._watchdog.guard(conn, deadline) if self._watchdog else nullcontext():
                yield conn
        except psycopg.OperationalError as exc:  # includes QueryCanceled (statement_timeout)
            if conn is not None:
                self._discard(conn)
                conn = None
            if reused:
                self._close_idle()  # a server restart drops every pooled connection: reconnect from scratch
            if isinstance(exc, psycopg.errors.DiskFull):  # SQLSTATE 53100: the statement failed, nothing stored
                self.full_disk.refused()
                raise StoreFull(f"the database's disk is full: {redact(_first_line(exc), self.url)}") from exc
            err = StoreUnavailable(f"the database did not answer: {redact(_first_line(exc), self.url)}")
            err.reused = reused and (deadline is None or time.monotonic() < deadline)
            raise err from exc
        finally:
            if conn is not None:
                if conn.closed or conn.broken:
                    self._discard(conn)
                else:
                    with self._lock:
                        self._idle.append(conn)
            if self._slots is not None:
                self._slots.release()

    @contextmanager
    def _write(self):
        committing = False
        try:
            with self._session() as conn:
                with conn.transaction():
                    with conn.cursor() as cur:
                        yield cur
                    committing = True  # the block's exit sends COMMIT
        except StoreUnavailable as exc:
            # a connection that failed during COMMIT leaves its outcome unknown: the server may have committed
            exc.outcome_unknown = committing and not isinstance(exc, StoreFull)
            raise
        self.full_disk.wrote()

    def _fetch(self, sql, args):
        with self._session() as conn, conn.cursor() as cur:
            cur.execute(self._sql(sql), args)
            return cur.fetchall()

    def _read(self, sql, args=()):
        try:
            return self._fetch(sql, args)
        except StoreUnavailable as exc:
            # a pooled connection the server dropped (restart, idle timeout), with time left: retry once
            if not getattr(exc, "reused", False):
                raise
            return self._fetch(sql, args)

    def _bucket_expr(self) -> str:
        return "floor(ts / ?) * ?"

    def _next_seq_sql(self) -> str:
        return "nextval('item_seq')"

    def _text_search(self, terms: list[str], limit: int, select: str) -> list[tuple]:
        # Terms are letters and digits only (base.search_terms), so each is a valid lexeme as written: a phrase
        # (`<->`: next to each other, in order), its last word a prefix. Past `search_candidates` matches the newest
        # (by upsert) answer unranked, as on SQLite; within it ts_rank orders them.
        query = " <-> ".join([*terms[:-1], f"{terms[-1]}:*"])
        common = self._read("SELECT COUNT(*) FROM (SELECT 1 FROM items WHERE search_vector @@ to_tsquery('simple', ?) "
                            "LIMIT ?) m", (query, self.search_candidates + 1))[0][0] > self.search_candidates
        if common:
            return self._read(select + ", to_tsquery('simple', ?) q WHERE i.search_vector @@ q "
                              "ORDER BY i.seq DESC LIMIT ?", (query, limit))
        return self._read(select + ", to_tsquery('simple', ?) q WHERE i.search_vector @@ q "
                          "ORDER BY ts_rank(i.search_vector, q) DESC, i.item_id LIMIT ?", (query, limit))
