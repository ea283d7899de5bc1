"""Hostile input at the edge: every case answers 4xx naming the field (never a 5xx, never an echo that cannot be
encoded), nothing bad is stored, and afterwards the store passes an integrity check and every catalogue and history
page answers 200. Also: idempotent retries by event_id, bounded and cached stats, and the repair migration on
stores holding rows written before the rules."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest

from tests.api.conftest import KEY, auth, make_settings

JSON = {**auth(), "Content-Type": "application/json"}
EVENT = '{"events": [{"user_id": "u", "item_id": "i1", %s}]}'


@pytest.fixture
def c(sqlite_client):
    """The SQLite app with a private key on every call: past the key checks, into the input checks."""
    sqlite_client.headers.update(auth())
    return sqlite_client


def names(r, field: str) -> bool:
    return any(field in [str(p) for p in e["loc"]] for e in r.json()["errors"])


def refused(r, field: str, status: int = 422) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    r.content.decode("utf-8")  # the answer itself is valid UTF-8 JSON
    assert names(r, field), r.text


def check_store_readable(client, database: str) -> None:
    """The integrity check, then every catalogue page and every shopper's history page answers 200."""
    from contextlib import closing

    from deepshelf.storage import open_store

    if database.startswith("sqlite"):
        with closing(sqlite3.connect(database.removeprefix("sqlite:///"))) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with closing(open_store(database)) as store:
        users = [r[0] for r in store._read("SELECT DISTINCT user_id FROM events")]
        total = store.count_items()
    for offset in range(0, total + 1, 50):
        page = client.get("/v1/items", params={"limit": 50, "offset": offset}, headers=auth())
        assert page.status_code == 200, page.text
        for item in page.json()["items"]:
            assert client.get(f"/v1/items/{quote(item['item_id'], safe='')}", headers=auth()).status_code == 200
    for user in users:
        assert client.get(f"/v1/users/{quote(user, safe='')}/events", headers=auth()).status_code == 200, user


# ---- numbers, text, times, ids --------------------------------------------------------------------------------
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400"]


@pytest.mark.parametrize("number", NON_FINITE)
def test_non_finite_numbers(c, number):
    refused(c.post("/v1/events", content=EVENT % f'"value": {number}', headers=JSON), "value")
    refused(c.put("/v1/items/x", content=f'{{"price": {number}}}', headers=JSON), "price")
    refused(c.put("/v1/items/x", content=f'{{"attributes": {{"a": [1, {{"b": {number}}}]}}}}', headers=JSON), "a")
    refused(c.post("/v1/sessions/recommendations",
                   content=f'{{"item_ids": ["i1"], "rules": {{"boost_items": {{"i2": {number}}}}}}}', headers=JSON),
            "i2")
    refused(c.post("/v1/sessions/recommendations", content=f'{{"item_ids": ["i1"], "k": {number}}}', headers=JSON),
            "k")
    refused(c.get("/v1/popular", params={"min_price": number.lower()}), "min_price")
    refused(c.get("/v1/stats/events", params={"days": number.lower()}, headers=auth()), "days")


TEXT_FIELDS = [  # (body, field named in the 422)
    ('{"events": [{"user_id": %s, "item_id": "i1"}]}', "user_id"),
    ('{"events": [{"user_id": "u", "item_id": %s}]}', "item_id"),
    ('{"events": [{"user_id": "u", "item_id": "i1", "session_id": %s}]}', "session_id"),
    ('{"events": [{"user_id": "u", "item_id": "i1", "event_id": %s}]}', "event_id"),
    ('{"items": [{"item_id": "x", "title": %s}]}', "title"),
    ('{"items": [{"item_id": "x", "description": %s}]}', "description"),
    ('{"items": [{"item_id": "x", "category": %s}]}', "category"),
    ('{"items": [{"item_id": "x", "attributes": {"colour": %s}}]}', "colour"),
    ('{"items": [{"item_id": "x", "attributes": {"colour": {"deep": [%s]}}}]}', "colour"),
]
BAD_TEXT = {"surrogate": '"a\\udc00"', "high surrogate": '"\\ud800"', "NUL": '"a\\u0000b"', "bell": '"a\\u0007"',
            "C1": '"a\\u0091b"'}


@pytest.mark.parametrize("body,field", TEXT_FIELDS)
@pytest.mark.parametrize("bad", list(BAD_TEXT))
def test_invalid_text_in_bodies(c, body, field, bad):
    path = "/v1/events" if body.startswith('{"events"') else "/v1/items"
    r = c.post(path, content=body % BAD_TEXT[bad], headers=JSON)
    refused(r, field)
    assert "\\udc00" not in r.text and "\\ud800" not in r.text  # never echoed


def test_invalid_text_elsewhere_and_what_stays_allowed(c):
    refused(c.put("/v1/items/x", content='{"attributes": {"a\\udc00": 1}}', headers=JSON), "attributes")
    refused(c.post("/v1/admin/reload", content='{"run": "runs/\\udc00"}', headers=JSON), "run")
    refused(c.post("/v1/sessions/recommendations", content='{"item_ids": ["i1\\u0000"]}', headers=JSON), "item_ids")
    refused(c.get("/v1/search", params={"q": "lamp\x00"}), "q")
    refused(c.get("/v1/items", params={"category": "a\x01"}, headers=auth()), "category")
    refused(c.get("/v1/popular", params={"exclude": "i1\x00"}), "exclude")
    refused(c.get("/v1/popular", params={"boost": "cat0\x00:2"}), "boost")
    refused(c.get("/v1/users/u%00/recommendations"), "user_id")
    refused(c.get("/v1/items/i%01/similar"), "item_id")
    refused(c.get("/v1/users/a%00/events", headers=auth()), "user_id")
    # free text keeps tabs and newlines; unicode beyond the BMP is fine
    ok = c.put("/v1/items/x", json={"title": "Lamp\tred\nbig", "attributes": {"note": "🙂\nok", "n": [1, 2.5]}},
               headers=auth())
    assert ok.status_code == 200, ok.text
    assert c.get("/v1/items/x").json()["title"] == "Lamp\tred\nbig"


def test_timestamps_in_the_far_future_or_before_1970(c):
    now = datetime.now(timezone.utc)
    for ts in [(now + timedelta(days=2)).isoformat(), "9999-12-31T00:00:00Z", "1969-12-31T23:59:59Z",
               "1970-01-01T00:30:00+01:00", 1e400]:
        r = c.post("/v1/events", content=EVENT % f'"timestamp": {json.dumps(ts)}', headers=JSON)
        refused(r, "timestamp")
    ok = c.post("/v1/events", json={"events": [{"user_id": "t", "item_id": "i1",
                                                "timestamp": (now + timedelta(hours=12)).isoformat()},
                                               {"user_id": "t", "item_id": "i2", "timestamp": "1970-01-01T00:00:00Z"}]},
                headers=auth())
    assert ok.status_code == 200 and ok.json() == {"accepted": 2}


def test_clock_skew_is_configurable(run_link, tmp_path):
    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app

    app = create_app(make_settings(run_link, f"sqlite:///{tmp_path / 's.db'}", max_clock_skew_s=60))
    ahead = (datetime.now(timezone.utc) + timedelta(minutes=10)).isoformat()
    with TestClient(app) as c:
        refused(c.post("/v1/events", json={"events": [{"user_id": "u", "item_id": "i1", "timestamp": ahead}]},
                       headers=auth()), "timestamp")
        assert "60 s ahead" in c.post("/v1/events", json={"events": [{"user_id": "u", "item_id": "i1",
                                                                       "timestamp": ahead}]},
                                      headers=auth()).json()["errors"][0]["msg"]


def test_ids_with_a_slash_are_refused_at_write_and_read(c):
    """The rule: an id is one URL path segment. Refused when written (body or path) and when read by path."""
    refused(c.post("/v1/items", json={"items": [{"item_id": "a/b"}]}, headers=auth()), "item_id")
    refused(c.post("/v1/events", json={"events": [{"user_id": "u/1", "item_id": "i1"}]}, headers=auth()), "user_id")
    for dots in (".", "..", " .. "):
        refused(c.post("/v1/items", json={"items": [{"item_id": dots}]}, headers=auth()), "item_id")
    refused(c.put("/v1/items/a%2Fb", json={}, headers=auth()), "item_id")
    refused(c.get("/v1/items/a%2Fb"), "item_id")
    refused(c.get("/v1/items/a%2fsimilar/similar"), "item_id")
    refused(c.get("/v1/users/a%2Fb/recommendations"), "user_id")
    refused(c.get("/v1/users/a%2Fb/events", headers=auth()), "user_id")
    # a plot name is not an id: the run routes keep answering 404 for it
    assert c.get("/v1/runs/current/plots/..%2Fconfig.json", headers=auth()).status_code == 404


def test_other_url_characters_round_trip_by_path(c):
    """Every id that can be written can be read back by its (percent-encoded) path."""
    ids = ["a?b#c", "50% off", "x\\y", "a:b;c", "é ü", "...a", "+&="]
    assert c.post("/v1/items", json={"items": [{"item_id": i, "title": i} for i in ids]},
                  headers=auth()).status_code == 200
    for i in ids:
        r = c.get(f"/v1/items/{quote(i, safe='')}")
        assert r.status_code == 200 and r.json()["item_id"] == i, (i, r.text)


def test_a_422_echoes_what_it_can_encode_only(c):
    r = c.get("/v1/popular", params={"k": "abc"})
    assert r.status_code == 422 and r.json()["errors"][0]["input"] == "abc"
    r = c.post("/v1/events", content=EVENT % '"value": NaN', headers=JSON)
    assert r.status_code == 422 and "input" not in r.json()["errors"][0]
    r = c.post("/v1/events", content='{"events": [{"user_id": "\\udc00", "item_id": "i1"}]}',
                           headers=JSON)
    assert r.status_code == 422 and "input" not in r.json()["errors"][0]


# ---- bodies ---------------------------------------------------------------------------------------------------
def _asgi_post(app, path: str, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[int, bytes]:
    """One request straight to the ASGI app, its body sent as `chunks` whatever the headers claim."""
    import asyncio

    sent = {"status": None, "body": b""}
    queue = [{"type": "http.request", "body": c, "more_body": n < len(chunks) - 1} for n, c in enumerate(chunks)]

    async def receive():
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
        elif message["type"] == "http.response.body":
            sent["body"] += message.get("body", b"")

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"test"), (b"x-api-key", KEY.encode()), (b"content-type", b"application/json"),
                         *headers], "client": ("127.0.0.1", 1), "server": ("test", 80), "app": app}
    asyncio.run(app(scope, receive, send))
    return sent["status"], sent["body"]


def test_huge_chunked_and_lying_bodies(c):
    app = c.app
    limit = app.state.settings.max_body_bytes
    events = {"events": [{"user_id": "big", "item_id": "i1", "session_id": "s" * 200}] * 20}
    huge = json.dumps(events).encode() * (limit // 5000 + 2)
    assert c.post("/v1/events", content=huge, headers=JSON).status_code == 413
    # chunked (no Content-Length): cut off once past the limit
    r = c.post("/v1/events", content=iter([huge[i:i + 65536] for i in range(0, len(huge), 65536)]), headers=JSON)
    assert r.status_code == 413
    # a Content-Length that lies low: the bytes are counted, not the header
    status, _ = _asgi_post(app, "/v1/events", [(b"content-length", b"10")],
                           [huge[i:i + 65536] for i in range(0, len(huge), 65536)])
    assert status == 413
    # ... or high: the body ends early (a truncated JSON document), a 422 naming the body
    status, body = _asgi_post(app, "/v1/events", [(b"content-length", b"5000")], [b'{"events": [{"user_id": "x"'])
    assert status == 422 and json.loads(body)["errors"][0]["loc"][0] == "body"
    # a Content-Length that is not a number is not trusted either
    status, _ = _asgi_post(app, "/v1/events", [(b"content-length", b"nope")], [huge])
    assert status == 413
    assert c.get("/v1/users/big/events", headers=auth()).json()["events"] == []  # nothing half-stored


def test_after_the_attack_the_store_is_whole(client, database):
    """Every kind of hostile write at once, then the integrity check and every page (both stores)."""
    c = client
    c.headers.update(auth())
    hostile = [EVENT % '"value": NaN', EVENT % '"value": 1e400', '{"events": [{"user_id": "a\\u0000", "item_id": "i1"}]}',
               '{"events": [{"user_id": "a\\udc00", "item_id": "i1"}]}', EVENT % '"timestamp": "3000-01-01T00:00:00"',
               '{"events": [{"user_id": "a/b", "item_id": "i1"}]}']
    for body in hostile:
        assert c.post("/v1/events", content=body, headers=JSON).status_code == 422
    for body in ('{"attributes": {"a": "\\udc00"}}', '{"title": "a\\u0000"}', '{"price": Infinity}',
                 '{"attributes": {"a": NaN}}'):
        assert c.put("/v1/items/X", content=body, headers=JSON).status_code == 422
    for path in ("/v1/search?q=a%00", "/v1/items?q=%00", "/v1/users/%00/recommendations", "/v1/items/%00"):
        assert c.get(path, headers=auth()).status_code == 422, path
    assert c.post("/v1/events", json={"events": [{"user_id": "fine", "item_id": "i1"}]}, headers=auth()).status_code == 200
    check_store_readable(c, database)


# ---- idempotent retries -----------------------------------------------------------------------------------------
def test_a_retried_batch_is_stored_once(client, database):
    from contextlib import closing

    from deepshelf.storage import open_store

    batch = {"events": [{"user_id": "r", "item_id": "i1", "event_id": "e-1"},
                        {"user_id": "r", "item_id": "i2", "event_id": "e-2", "type": "purchase"},
                        {"user_id": "r", "item_id": "i3"},  # no id: every copy is kept
                        {"user_id": "r", "item_id": "i1", "event_id": "e-1"}]}  # repeated inside the batch
    first = client.post("/v1/events", json=batch, headers=auth())
    again = client.post("/v1/events", json=batch, headers=auth())
    assert first.status_code == again.status_code == 200 and first.json() == again.json() == {"accepted": 4}
    with closing(open_store(database)) as store:
        rows = store._read("SELECT item_id, event_id FROM events WHERE user_id = 'r' ORDER BY id")
    assert sorted(rows, key=str) == sorted([("i1", "e-1"), ("i2", "e-2"), ("i3", None), ("i3", None)], key=str)
    assert len(client.get("/v1/users/r/events", headers=auth()).json()["events"]) == 4


# ---- stats ------------------------------------------------------------------------------------------------------
def test_stats_are_bounded(c):
    refused(c.get("/v1/stats/events", params={"bucket": "minute", "days": 3660}, headers=auth()), "days")
    refused(c.get("/v1/stats/events", params={"bucket": "hour", "days": 1000}, headers=auth()), "days")
    refused(c.get("/v1/stats/events", params={"bucket": "day", "days": 4000}, headers=auth()), "days")
    assert c.get("/v1/stats/events", params={"bucket": "day", "days": 3660}, headers=auth()).status_code == 200
    # stored far-future events (written before the rules) cannot widen an answer past its range
    c.app.state.service.store.add_events([__import__("deepshelf.storage", fromlist=["Event"]).Event(
        "f", "i1", "view", time.time() + 10 * 365 * 86400)])
    stats = c.get("/v1/stats/events", params={"bucket": "hour", "days": 1}, headers=auth()).json()
    assert len(stats["buckets"]) <= 25


def test_concurrent_stats_calls_compute_once():
    from deepshelf.engine.stats import TtlCache

    cache, calls, release = TtlCache(ttl_s=3600), [], threading.Event()

    def compute():
        calls.append(1)
        release.wait(10)
        return "answer"

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(("hour", 7.0), compute))) for _ in range(4)]
    for t in threads:
        t.start()
    release.set()
    for t in threads:
        t.join()
    assert results == ["answer"] * 4 and len(calls) == 1
    assert cache.get(("day", 7.0), lambda: "other") == "other"  # another key is its own answer


# ---- the repair migration ---------------------------------------------------------------------------------------
def _plant_bad_rows(database: str) -> None:
    """Rows as an older deepshelf (or another tool) could store them, written straight into the tables."""
    from contextlib import closing

    from deepshelf.storage import open_store

    far = time.time() + 50 * 365 * 86400
    with closing(open_store(database)) as store:
        with store._write() as cur:
            sql = store._sql
            cur.execute(sql("INSERT INTO items (item_id, title, attributes, price, seq, updated_at) "
                            "VALUES (?, ?, ?, ?, 1000, 0)"),
                        ("bad-attr", "Lamp\u0007", json.dumps({"a": "\udc00", "n": float("nan")}), float("inf")))
            cur.execute(sql("INSERT INTO events (user_id, item_id, type, ts, value) VALUES (?, ?, ?, ?, ?)"),
                        ("future", "i1", "view", far, None))
            cur.execute(sql("INSERT INTO events (user_id, item_id, type, ts, value) VALUES (?, ?, ?, ?, ?)"),
                        ("inf-value", "i1", "view", 1_700_000_000.0, float("inf")))
            cur.execute(sql("INSERT INTO events (user_id, item_id, type, ts) VALUES (?, ?, ?, ?)"),
                        ("ctl\u0001", "i1", "view", 1_700_000_000.0))
            if store.kind == "sqlite":  # bytes that are not UTF-8, and a NUL: SQLite holds both
                cur.execute("INSERT INTO events (user_id, item_id, type, ts) VALUES (CAST(x'61ff' AS TEXT), 'i1', "
                            "'view', 1700000000)")
                cur.execute("INSERT INTO items (item_id, title, seq, updated_at) VALUES ('nul', 'a' || char(0) || "
                            "'b', 1001, 0)")
                cur.execute("INSERT INTO items (item_id, seq, updated_at) VALUES (CAST(x'62ff' AS TEXT), 1002, 0)")
            # as if this store had never run migration 3
            cur.execute(sql("DELETE FROM schema_version WHERE version >= ?"), (3,))


def test_repair_migration_makes_every_page_readable(run_link, database):
    from contextlib import closing

    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app
    from deepshelf.storage import open_store

    make_settings(run_link, database)  # seeds the catalogue
    _plant_bad_rows(database)
    with closing(open_store(database)) as store:  # opening migrates: the repair runs
        assert store.schema_version() >= 3
        moved = {r[0]: r[1] for r in store._read("SELECT reason, source FROM quarantine")}
        repaired = store.get_item("bad-attr")
        history = store._read("SELECT user_id, value FROM events WHERE user_id = 'inf-value'")
    assert any("ts" in reason for reason in moved) and any("user_id" in reason for reason in moved)
    assert repaired.attributes == {"a": "\ufffd", "n": None} and repaired.price is None and repaired.title == "Lamp"
    assert history == [("inf-value", None)]
    with TestClient(create_app(make_settings(run_link, database))) as c:
        check_store_readable(c, database)
        c.headers.update(auth())
        assert c.get("/v1/items/bad-attr").status_code == 200
        assert c.get("/v1/users/future/events", headers=auth()).json()["events"] == []
        assert c.get("/v1/popular").status_code == 200


def test_a_body_that_is_not_utf8_json_names_the_body(c):
    for raw in (b"\xff\xfe{\x00", b"{not json"):  # not UTF-8 (FastAPI's own answer was a bare 400), malformed
        r = c.post("/v1/events", content=raw, headers=JSON)
        assert r.status_code == 422 and r.json()["errors"][0]["loc"][0] == "body", r.text


def test_a_405_allows_every_method_its_path_serves(c):
    doc = c.get("/openapi.json").json()["paths"]
    for path, url in (("/v1/items", "/v1/items"), ("/v1/items/{item_id}", "/v1/items/i1")):
        r = c.request("PATCH", url)
        assert r.status_code == 405
        assert sorted(r.headers["allow"].split(", ")) == sorted(m.upper() for m in doc[path]), r.headers


def test_a_refusal_names_no_server_path(c):
    from deepshelf.errors import DeepshelfError

    def refuse():
        raise DeepshelfError("--run /srv/shop/runs/2024-05/model.pt: not a deepshelf run; field 'k' is 1/2")

    c.app.add_api_route("/test-refusal", refuse)
    r = c.get("/test-refusal")
    assert r.status_code == 400 and "/srv" not in r.text and "not a deepshelf run; field 'k' is 1/2" in r.text


def test_before_a_run_is_loaded_lists_answer_503_with_retry_after(c):
    runs = c.app.state.service.runs
    loaded, runs.state = runs.state, None
    try:
        r = c.get("/v1/popular")
    finally:
        runs.state = loaded
    assert r.status_code == 503 and r.headers["retry-after"], r.text
    assert c.get("/v1/popular").status_code == 200
