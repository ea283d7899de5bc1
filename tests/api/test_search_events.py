"""The search event (issue 29): a search's words stored, normalised, with its impression on both stores; the
clicks and purchases that follow read back as the search log; erased with the shopper (their searches, and any
search they clicked); never readable with the public key."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from fastapi.testclient import TestClient

from deepshelf.api.app import create_app
from deepshelf.content.feedback import SearchFeedback
from deepshelf.storage import open_store
from deepshelf.storage.search_log import search_events
from tests.api.conftest import PUBLIC_KEY, auth, make_settings
from tests.api.test_erasure import app_client  # noqa: F401 (fixture)

SECRET = "zqx-private-words"  # a marker no other row holds


def search(c, q: str, **params) -> dict:
    r = c.get("/v1/search", params={"q": q, "k": 5, **params})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_search_s_words_are_stored_normalised_and_read_back_with_what_followed(client, database):
    body = search(client, "  Group   1 ")
    shown = [it["item_id"] for it in body["items"]]
    other = search(client, "group 2")  # shown, never clicked: not in the log
    client.get("/v1/popular", params={"k": 3})  # not a search: no words
    rid = body["recommendation_id"]
    events = [{"user_id": "alice", "item_id": shown[1], "type": "view", "recommendation_id": rid},
              {"user_id": "alice", "item_id": shown[1], "type": "purchase"},
              {"user_id": "alice", "item_id": "i99", "type": "view", "recommendation_id": rid}]  # not shown
    assert client.post("/v1/events", json={"events": events}).status_code == 200
    client.app.state.service.impressions.flush()
    with closing(open_store(database)) as store:
        assert store.impressions_of(rid).query == "group 1"
        assert store.impressions_of(other["recommendation_id"]).query == "group 2"
        assert store._read("SELECT COUNT(*) FROM impressions WHERE surface <> 'search' AND query IS NOT NULL"
                           )[0][0] == 0
        log = search_events(store)
    assert log.select("query", "item", "kind").rows() == [("group 1", shown[1], "view"),
                                                          ("group 1", shown[1], "purchase")]
    learnt = SearchFeedback.fit(log, [f"i{i}" for i in range(100)], {})
    assert learnt.pairs.select("query", "item").rows() == [("group 1", shown[1])]
    # what a run trained from this store reads (runs.content learns the search from it)
    from deepshelf.runs.sources import load_source

    assert load_source(database).search_log.select("query", "item", "kind").rows() == log.select(
        "query", "item", "kind").rows()


def test_erasure_takes_the_shopper_s_searches_and_the_searches_they_clicked(app_client):  # noqa: F811
    c, database = app_client
    mine = search(c, f"{SECRET} signed in", user_id="gone")
    anonymous = search(c, f"{SECRET} before signing in")  # no shopper, no session: only the click ties it
    kept = search(c, "someone else's words", user_id="kept")
    item = "i1"  # (an empty answer here: the run has no content index, and the store matches no such words)
    c.post("/v1/events", json={"events": [
        {"user_id": "gone", "item_id": item, "type": "view", "recommendation_id": anonymous["recommendation_id"]},
        {"user_id": "kept", "item_id": item, "type": "view", "recommendation_id": kept["recommendation_id"]}]})
    c.app.state.service.impressions.flush()

    def stored(rid: str) -> bool:
        with closing(open_store(database)) as store:
            return store.impressions_of(rid) is not None

    assert stored(mine["recommendation_id"]) and stored(anonymous["recommendation_id"])
    assert c.delete("/v1/users/gone").status_code == 200
    assert not stored(mine["recommendation_id"]) and not stored(anonymous["recommendation_id"])
    assert stored(kept["recommendation_id"])
    with closing(open_store(database)) as store:
        assert store._read("SELECT COUNT(*) FROM impressions WHERE query LIKE ?", (f"%{SECRET}%",))[0][0] == 0
        assert store.impressions_of(kept["recommendation_id"]).query == "someone else's words"


def test_an_erased_search_leaves_no_bytes_in_the_sqlite_file(run_link, tmp_path):
    db = tmp_path / "words.db"
    with TestClient(create_app(make_settings(run_link, f"sqlite:///{db}")), headers=auth()) as c:
        for _ in range(3):
            search(c, f"{SECRET} again", user_id="gone")
        c.post("/v1/events", json={"events": [{"user_id": "gone", "item_id": "i1", "type": "view"}]})
        c.app.state.service.impressions.flush()
        files = [p for p in (db, Path(f"{db}-wal")) if p.exists()]
        assert any(SECRET.encode() in p.read_bytes() for p in files)  # the check below can see it
        assert c.delete("/v1/users/gone").status_code == 200
        for p in (db, Path(f"{db}-wal")):
            if p.exists():
                assert SECRET.encode() not in p.read_bytes(), p.name
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM impressions WHERE query IS NOT NULL").fetchone()[0] == 0


def test_the_public_key_reads_no_one_s_searches(client):
    """Every GET route, with the public key and the searching shopper's id wherever a route takes one: no
    answer holds their words (their own list with a shopper token would still not show them)."""
    search(client, f"{SECRET} dress", user_id="u0_1")
    client.app.state.service.impressions.flush()
    public = {"X-API-Key": PUBLIC_KEY}
    seen = 0
    for route, methods in client.get("/openapi.json").json()["paths"].items():
        if "get" not in methods or not route.startswith("/v1"):
            continue
        path = (route.replace("{user_id}", "u0_1").replace("{item_id}", "i1")
                .replace("{name}", "x").replace("{experiment}", "x"))
        if "{" in path:
            path = path.split("{")[0] + "x"
        r = client.get(path, headers=public, params={"q": "dress", "user_id": "u0_1"})
        seen += 1
        assert SECRET not in r.text, (route, r.status_code)
    assert seen >= 10
    # the analytics that read impressions answer the private key only
    assert client.get("/v1/analytics/recommendations", headers=public).status_code == 403
