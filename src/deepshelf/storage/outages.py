"""How the store says it cannot answer: `StoreUnavailable` (slow or down: 503 + Retry-After), `StoreFull` (its disk
is full: 507), whether a failed write may have been committed all the same, and what background work counts as an
outage (`is_outage`: logged as one line, not a stack trace)."""

from __future__ import annotations

import sqlite3
import threading
import time

from deepshelf.errors import DeepshelfError


class StoreUnavailable(DeepshelfError):
    """The database did not answer within the store's timeout (connect, a free connection, or a statement), or
    the connection failed. `outcome_unknown` is True for a write whose commit was sent but not confirmed (the
    connection failed or timed out during COMMIT): it may have been stored, so a retry is safe only for events
    that carry an `event_id`. False: nothing of the call was stored."""

    outcome_unknown = False


class StoreFull(StoreUnavailable):
    """The database's disk (or quota) is full: nothing of the write was stored, and retrying will not help until
    space is freed (the server answers 507, and /ready 503 for a while: `FullDisk`)."""


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` is the store being unreachable, slow or full (rather than a bug): `StoreUnavailable`, or a
    driver's operational error that escaped it (SQLite's, psycopg's)."""
    if isinstance(exc, (StoreUnavailable, sqlite3.OperationalError)):
        return True
    return any(c.__module__.startswith("psycopg") and c.__name__ == "OperationalError" for c in type(exc).__mro__)


class FullDisk:
    """Remembers a write refused for a full disk: `now()` is True from then until a write succeeds or `hold_s`
    passes (a server that answers no writes meanwhile cannot tell otherwise; the next refused write starts it
    again), so /ready turns a full store's server away from the load balancer without a write of its own."""

    def __init__(self, hold_s: float = 60.0):
        self.hold_s = hold_s
        self._since: float | None = None
        self._lock = threading.Lock()

    def refused(self) -> None:
        with self._lock:
            self._since = time.monotonic()

    def wrote(self) -> None:
        if self._since is not None:
            with self._lock:
                self._since = None

    def now(self) -> bool:
        since = self._since
        return since is not None and time.monotonic() - since < self.hold_s
