"""Store faults a client must be told about honestly (issue 27, F2 and F10), on doubles of the drivers' own errors:
- a commit whose answer is lost (PostgreSQL: the connection fails during COMMIT) answers 503 saying the batch may
  have been stored, and a retry with the same event ids (what the Python client sends) stores it once;
- a full disk answers 507 to writes (SQLite's "database or disk is full", PostgreSQL's DiskFull) and turns /ready
  to 503 until a write succeeds again; reads go on."""

from __future__ import annotations

import sqlite3
from contextlib import closing, contextmanager

import pytest
from fastapi.testclient import TestClient

from deepshelf.api.app import create_app
from deepshelf.client import Client
from deepshelf.storage import open_store
from tests.api.conftest import KEY, auth, make_settings


def _insert(sql: str) -> bool:
    return sql.lstrip().upper().startswith("INSERT")


class _FullCursor:
    def __init__(self, cur):
        self._cur = cur

    def execute(self, sql, *args):
        if _insert(sql):
            raise sqlite3.OperationalError("database or disk is full")
        return self._cur.execute(sql, *args)

    def executemany(self, sql, rows):
        if _insert(sql):
            raise sqlite3.OperationalError("database or disk is full")
        return self._cur.executemany(sql, rows)

    def __getattr__(self, name):
        return getattr(self._cur, name)


class _FullConnection:
    def __init__(self, conn):
        self._conn = conn

    def cursor(self):
        return _FullCursor(self._conn.cursor())

    def __getattr__(self, name):
        return getattr(self._conn, name)


@contextmanager
def disk_full(store, monkeypatch):
    """Every INSERT fails as the driver fails on a full disk; the rest of the store works."""
    with monkeypatch.context() as m:
        if store.kind == "sqlite":
            real = type(store)._conn
            m.setattr(type(store), "_conn", lambda self: _FullConnection(real(self)))
        else:
            import psycopg
            import psycopg.errors

            for name in ("execute", "executemany"):
                real_call = getattr(psycopg.Cursor, name)

                def full(self, sql, *args, _real=real_call, **kwargs):
                    if isinstance(sql, str) and _insert(sql):
                        raise psycopg.errors.DiskFull("could not extend file: No space left on device")
                    return _real(self, sql, *args, **kwargs)

                m.setattr(psycopg.Cursor, name, full)
        yield


def test_a_full_disk_answers_507_and_turns_ready_away(run_link, database, monkeypatch):
    app = create_app(make_settings(run_link, database, record_impressions=False))
    event = {"events": [{"user_id": "full", "item_id": "i1", "event_id": "f-1"}]}
    with TestClient(app, headers=auth()) as c:
        assert c.get("/ready").status_code == 200
        with disk_full(c.app.state.service.store, monkeypatch):
            r = c.post("/v1/events", json=event)
            assert r.status_code == 507 and "disk is full" in r.json()["detail"], r.text
            assert "retry-after" not in r.headers  # retrying will not help until space is freed
            assert c.put("/v1/items/new-1", json={"title": "New"}).status_code == 507
            ready = c.get("/ready")
            assert ready.status_code == 503 and ready.json()["disk_full"] is True
            assert c.get("/v1/popular").status_code == 200  # reads go on
        assert c.get("/v1/users/full/events").json()["events"] == []  # nothing half-written
        assert c.post("/v1/events", json=event).json() == {"accepted": 1}  # space freed
        ready = c.get("/ready")
        assert ready.status_code == 200 and ready.json()["disk_full"] is False


def test_a_lost_commit_says_the_batch_may_be_stored_and_a_retry_stores_it_once(run_link, fresh_postgres,
                                                                                 monkeypatch):
    import psycopg

    app = create_app(make_settings(run_link, fresh_postgres, record_impressions=False))
    lose = {"answers": 0}
    real_exit = psycopg.Transaction.__exit__

    def commit_then_lose_the_answer(self, *exc):
        out = real_exit(self, *exc)  # committed
        if exc[0] is None and lose["answers"] > 0:
            lose["answers"] -= 1
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return out

    monkeypatch.setattr(psycopg.Transaction, "__exit__", commit_then_lose_the_answer)
    events = [{"user_id": "lost", "item_id": "i1", "type": "purchase", "value": 12.0, "event_id": "o-77"},
              {"user_id": "lost", "item_id": "i2"}]
    with TestClient(app, headers=auth()) as c:
        lose["answers"] = 1
        r = c.post("/v1/events", json={"events": events[:1]})
        assert r.status_code == 503 and "may or may not have been stored" in r.json()["detail"], r.text
        assert r.headers["retry-after"]
        # it was stored all the same (the probe's finding): only the event id keeps the retry from storing it twice
        assert len(c.get("/v1/users/lost/events").json()["events"]) == 1
        assert c.post("/v1/events", json={"events": events[:1]}).json() == {"accepted": 1}
        # the Python client gives every event an id and retries the 503 with the same ids
        lose["answers"] = 1
        with Client("http://testserver", KEY, http=c) as shop:
            assert shop.send_events(events) == 2
    with closing(open_store(fresh_postgres)) as store:
        rows = store._read("SELECT item_id, event_id FROM events WHERE user_id = 'lost' ORDER BY item_id")
    assert [r[0] for r in rows] == ["i1", "i2"] and rows[0][1] == "o-77" and rows[1][1].startswith("py-")


@pytest.mark.parametrize("given", [None, "mine-1"])
def test_the_client_sends_an_id_per_event(given):
    from deepshelf.client import with_event_ids

    events = [{"user_id": "u", "item_id": "i1", "timestamp": "2026-01-01T00:00:00Z"}] * 2
    if given:
        events = [{**events[0], "event_id": given}, events[1]]
    first, again = with_event_ids(events), with_event_ids(events)
    assert first == again  # deterministic: a retry of the same list sends the same ids
    ids = [e["event_id"] for e in first]
    assert len(set(ids)) == 2 and (given is None or ids[0] == given)  # identical events are still two events
