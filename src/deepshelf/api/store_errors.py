"""The answers to a store that cannot answer: 503 + Retry-After while it is slow or down, saying whether a failed
write may have been stored after all; 507 when its disk is full (a retry will not help until space is freed)."""

from __future__ import annotations

import logging
import sqlite3

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from deepshelf.storage import StoreFull, StoreUnavailable

log = logging.getLogger(__name__)

UNAVAILABLE = "the event store is unavailable; nothing was stored; retry"
# A connection lost during COMMIT: the database may have committed. Events with an event_id are stored once
# however often they are sent, so retrying them is safe; without one a retry may store them twice.
OUTCOME_UNKNOWN = ("the event store did not confirm the write in time: it may or may not have been stored. Retry "
                   "with the same event_id on each event (an event whose id is stored already is not stored again); "
                   "events sent without an event_id may be stored twice by a retry")
FULL = "the event store's disk is full: nothing was stored; retrying will not help until space is freed"


def install(app: FastAPI) -> None:
    retry_after = {"Retry-After": str(app.state.settings.retry_after_s)}

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, exc: StoreUnavailable):
        log.warning("store unavailable on %s: %s", request.url.path, exc)
        return JSONResponse({"detail": OUTCOME_UNKNOWN if exc.outcome_unknown else UNAVAILABLE}, status_code=503,
                            headers=retry_after)

    @app.exception_handler(StoreFull)
    async def store_full(request: Request, exc: StoreFull):
        log.error("store full on %s: %s", request.url.path, exc)
        return JSONResponse({"detail": FULL}, status_code=507)

    @app.exception_handler(sqlite3.OperationalError)
    async def store_busy(request: Request, exc: Exception):
        # a driver error the store did not classify (an I/O error, ...): its transaction was rolled back
        log.error("store error on %s: %s", request.url.path, exc)
        return JSONResponse({"detail": UNAVAILABLE}, status_code=503, headers=retry_after)

    try:
        import psycopg

        app.add_exception_handler(psycopg.OperationalError, store_busy)
    except ImportError:
        pass
