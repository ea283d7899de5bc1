"""Erasure (issue 16): DELETE /v1/users/{id} removes the shopper's events from the store, read back directly
(SQL, and on SQLite the file's bytes), from what the service derived (trending, their recommendations), and
from the training data a later run reads; other shoppers keep theirs. Both stores."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deepshelf.api.app import create_app
from deepshelf.storage import open_store
from deepshelf.storage.training import read_training_frames
from tests.api.conftest import PUBLIC_KEY, auth, make_settings

GONE = "erase-me-7f3c9"  # a marker that cannot occur in the file by chance
KEPT = "stays-2b81"


def events_of(database: str, user: str, table: str = "events") -> int:
    """Count the shopper's rows (events, or impressions: the lists shown to them) with the database's own
    driver, not through deepshelf."""
    if database.startswith("sqlite"):
        with sqlite3.connect(database.removeprefix("sqlite:///")) as conn:
            return conn.execute(f"SELECT COUNT(*) FROM {table} WHERE user_id = ?", (user,)).fetchone()[0]
    import psycopg

    with psycopg.connect(database) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table} WHERE user_id = %s", (user,)).fetchone()[0]


@pytest.fixture
def app_client(run_link, database):
    # trending refreshed by the erasure itself, not by the background thread (an hour away here); impressions
    # likewise stored by the erasure (or the test's flush), not by the writer's own clock
    settings = make_settings(run_link, database, trending_refresh_s=3600, impression_flush_s=3600)
    with TestClient(create_app(settings), headers=auth()) as c:
        yield c, database


def post(c, user: str, item: str, n: int, kind: str = "purchase") -> None:
    events = [{"user_id": user, "item_id": item, "type": kind, "session_id": f"{user}-visit"} for _ in range(n)]
    assert c.post("/v1/events", json={"events": events}).status_code == 200


def test_erasure_removes_events_and_what_was_derived(app_client):
    c, database = app_client
    post(c, GONE, "i77", 30)  # alone, enough to make i77 the top trending item
    post(c, GONE, "i78", 2, "view")
    post(c, KEPT, "i5", 3)
    c.app.state.service.runs.refresh_trending()
    top = c.get("/v1/popular", params={"k": 1}).json()["items"][0]
    assert top["item_id"] == "i77" and top["reason"] == "trending"
    personal = c.get(f"/v1/users/{GONE}/recommendations", params={"k": 5}).json()
    assert personal["source"] != "fallback"
    c.get("/v1/search", params={"q": "group", "user_id": GONE})  # still queued for the writer when erased
    c.get(f"/v1/users/{KEPT}/recommendations")
    c.app.state.service.impressions.flush()
    c.get(f"/v1/users/{GONE}/recommendations", params={"k": 3})
    assert events_of(database, GONE, "impressions") >= 2

    r = c.delete(f"/v1/users/{GONE}")
    assert r.status_code == 200 and r.json() == {"user_id": GONE, "erased_events": 32}

    assert events_of(database, GONE) == 0 and events_of(database, KEPT) == 3
    c.app.state.service.impressions.flush()
    assert events_of(database, GONE, "impressions") == 0 and events_of(database, KEPT, "impressions") == 1
    assert c.get(f"/v1/users/{GONE}/events").json()["events"] == []
    assert GONE not in {u["user_id"] for u in c.get("/v1/users", params={"limit": 100}).json()["users"]}
    # derived at once: trending no longer counts them, and they are a shopper the service has never seen
    assert c.get("/v1/popular", params={"k": 1}).json()["items"][0]["item_id"] != "i77"
    answer = c.get(f"/v1/users/{GONE}/recommendations", params={"k": 5}).json()
    assert answer["source"] == "fallback" and not any("because" in it for it in answer["items"])
    # a run trained afterwards reads the store without them
    events, _ = read_training_frames(database)
    assert GONE not in set(events["user"].to_list()) and KEPT in set(events["user"].to_list())
    # erasing again is harmless
    assert c.delete(f"/v1/users/{GONE}").json()["erased_events"] == 0


def test_sqlite_file_keeps_no_bytes_of_an_erased_shopper(run_link, tmp_path):
    db = tmp_path / "bytes.db"
    with TestClient(create_app(make_settings(run_link, f"sqlite:///{db}")), headers=auth()) as c:
        post(c, GONE, "i3", 200)
        post(c, KEPT, "i4", 5)
        for _ in range(3):  # the lists shown to them, stored as impressions
            c.get(f"/v1/users/{GONE}/recommendations")
        c.app.state.service.impressions.flush()
        files = [p for p in (db, Path(f"{db}-wal")) if p.exists()]
        assert any(GONE.encode() in p.read_bytes() for p in files)  # the check below can see it
        assert c.delete(f"/v1/users/{GONE}").json()["erased_events"] == 200
        for p in (db, Path(f"{db}-wal")):
            if p.exists():
                data = p.read_bytes()
                assert GONE.encode() not in data, p.name
        assert KEPT.encode() in db.read_bytes()


def test_erasure_needs_a_private_key(client):
    post(client, GONE, "i1", 1)
    for headers in ({"X-API-Key": ""}, {"X-API-Key": "wrong"}):
        assert client.delete(f"/v1/users/{GONE}", headers=headers).status_code == 401
    assert client.delete(f"/v1/users/{GONE}", headers={"X-API-Key": PUBLIC_KEY}).status_code == 403
    assert client.get(f"/v1/users/{GONE}/events").json()["events"], "a refused erasure erases nothing"


def test_erasure_takes_the_lists_shown_in_the_shoppers_sessions(app_client):
    """Lists shown to an anonymous visit (impressions keyed by its session id only) that the shopper's events
    name: erased with them; another visit's stay (issue 27, F9)."""
    c, database = app_client
    visit, other = f"{GONE}-visit", "someone-elses-visit"
    for session in (visit, visit, other):
        r = c.post("/v1/sessions/recommendations", params={"session_id": session}, json={"item_ids": ["i1"]})
        assert r.status_code == 200, r.text
    post(c, GONE, "i1", 1, "view")  # signs in: their event carries the visit's session id
    c.app.state.service.impressions.flush()

    def shown(session: str) -> int:
        with closing(open_store(database)) as store:
            return store._read("SELECT COUNT(*) FROM impressions WHERE session_id = ?", (session,))[0][0]

    assert shown(visit) == 2 and shown(other) == 1
    assert c.delete(f"/v1/users/{GONE}").json()["erased_events"] == 1
    assert shown(visit) == 0 and shown(other) == 1
