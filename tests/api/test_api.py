"""Every endpoint over HTTP, on both stores: shapes, real-time behaviour, fallbacks, auth, validation, limits."""

from __future__ import annotations

import base64

import pytest

from tests.api.conftest import KEY, auth, group_of, make_settings

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).decode()


def post_events(client, *events, key=KEY):
    return client.post("/v1/events", json={"events": [dict(e) for e in events]}, headers={"X-API-Key": key})


def test_health_and_metrics(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model_version"].startswith("knn-")
    assert health["store"] in ("sqlite", "postgresql") and health["items"] >= 100
    post_events(client, {"user_id": "m", "item_id": "i1"})
    client.get("/v1/users/m/recommendations")
    text = client.get("/metrics").text
    assert 'deepshelf_http_requests_total{method="GET",route="/v1/users/{user_id}/recommendations",status="200"}' in text
    assert "deepshelf_http_request_duration_seconds_bucket" in text
    assert "deepshelf_events_ingested_total 1.0" in text
    assert f'deepshelf_model_info{{version="{health["model_version"]}"}} 1.0' in text
    lat = client.get("/v1/stats/latency").json()
    route = {r["route"]: r for r in lat["routes"]}["/v1/users/{user_id}/recommendations"]
    assert route["count"] == 1 and route["p50_ms"] > 0 and route["p99_ms"] >= route["p50_ms"]


def test_event_changes_next_answer_at_once(client):
    """A shopper of group 0 views items; the very next answer recommends group-0 items, from the model."""
    first = client.get("/v1/users/new-shopper/recommendations", params={"k": 5}).json()
    assert first["source"] == "fallback" and all(i["reason"] in ("popular", "trending", "new_arrival")
                                                 for i in first["items"])
    assert post_events(client, {"user_id": "new-shopper", "item_id": "i1", "type": "view"},
                       {"user_id": "new-shopper", "item_id": "i2", "type": "cart"}).json() == {"accepted": 2}
    second = client.get("/v1/users/new-shopper/recommendations", params={"k": 5}).json()
    assert second["source"] == "model" and second["model_version"] == first["model_version"]
    model_items = [i for i in second["items"] if i["reason"] == "also_bought"]
    assert len(model_items) >= 3 and all(group_of(i["item_id"]) == 0 for i in model_items)
    assert not {"i1", "i2"} & {i["item_id"] for i in second["items"]}  # seen items are not recommended again
    scores = [i["score"] for i in second["items"]]
    assert scores == sorted(scores, reverse=True)
    # a view of group-2 items moves the answer again
    post_events(client, *({"user_id": "new-shopper", "item_id": f"i{50 + j}"} for j in range(6)))
    third = client.get("/v1/users/new-shopper/recommendations", params={"k": 5}).json()
    assert sum(group_of(i["item_id"]) == 2 for i in third["items"]) >= 3


def test_user_events_newest_first(client):
    post_events(client, {"user_id": "h", "item_id": "i1", "timestamp": "2024-01-01T00:00:00Z"},
                {"user_id": "h", "item_id": "i2", "timestamp": "2024-01-03T00:00:00+00:00", "type": "purchase",
                 "value": 2, "session_id": "s1"},
                {"user_id": "h", "item_id": "i3", "timestamp": "2024-01-02T00:00:00"})
    events = client.get("/v1/users/h/events").json()["events"]
    assert [e["item_id"] for e in events] == ["i2", "i3", "i1"]
    assert events[0]["type"] == "purchase" and events[0]["value"] == 2 and events[0]["session_id"] == "s1"
    assert client.get("/v1/users/h/events", params={"limit": 1}).json()["events"][0]["item_id"] == "i2"
    assert client.get("/v1/users/nobody/events").json() == {"user_id": "nobody", "events": []}
    assert client.get("/v1/users", params={"limit": 5}).json()["users"][0]["user_id"] == "h"


def test_session_recommendations(client):
    answer = client.post("/v1/sessions/recommendations", json={"item_ids": ["i30", "i31", "unknown-id"]},
                         params={"k": 6}).json()
    assert answer["source"] == "model" and len(answer["items"]) == 6
    assert sum(group_of(i["item_id"]) == 1 for i in answer["items"]) >= 4
    assert not {"i30", "i31"} & {i["item_id"] for i in answer["items"]}
    body_k = client.post("/v1/sessions/recommendations", json={"items": ["i30"], "k": 3, "exclude": ["i26"]}).json()
    assert len(body_k["items"]) == 3 and "i26" not in [i["item_id"] for i in body_k["items"]]
    empty = client.post("/v1/sessions/recommendations", json={"item_ids": []}).json()
    assert empty["source"] == "fallback" and len(empty["items"]) == 10


def test_similar_behavior_and_unavailable_modes(client):
    answer = client.get("/v1/items/i3/similar", params={"k": 5}).json()
    assert len(answer["items"]) == 5 and "i3" not in [i["item_id"] for i in answer["items"]]
    assert all(i["reason"] == "also_bought" and group_of(i["item_id"]) == 0 for i in answer["items"])
    for mode in ("text", "visual", "hybrid"):
        r = client.get("/v1/items/i3/similar", params={"mode": mode})
        assert r.status_code == 409 and "not available for this run" in r.json()["detail"]
    assert client.get("/v1/items/nope/similar").status_code == 404
    bad = client.get("/v1/items/i3/similar", params={"mode": "smell"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"][-1] == "mode"


def test_popular_and_trending(client):
    answer = client.get("/v1/popular", params={"k": 4}).json()
    assert len(answer["items"]) == 4 and answer["source"] == "fallback"
    post_events(client, *({"user_id": f"t{j}", "item_id": "i99", "type": "purchase"} for j in range(5)))
    client.app.state.service.runs.refresh_trending()  # what the background refresh does every trending_refresh_s
    top = client.get("/v1/popular", params={"k": 4, "in_stock": False}).json()["items"][0]
    assert top == {"item_id": "i99", "score": 1.0, "reason": "trending"}


def test_search(client):
    post_events(client, {"user_id": "s", "item_id": "i77", "type": "purchase"})
    service = client.app.state.service
    service.runs.refresh_trending()
    answer = client.get("/v1/search", params={"q": "Product 7", "k": 5}).json()
    ids = [i["item_id"] for i in answer["items"]]
    assert ids[0] == "i77" and all(i.startswith("i7") for i in ids) and answer["items"][0]["reason"] == "text_match"
    personal = client.get("/v1/search", params={"q": "group 2", "user_id": "s", "k": 3}).json()
    assert all(group_of(i["item_id"]) == 2 for i in personal["items"])
    assert client.get("/v1/search", params={"q": "zzz-nothing"}).json()["items"] == []
    assert client.get("/v1/search", params={"q": "   "}).status_code == 422
    assert client.get("/v1/search").json()["errors"][0]["loc"] == ["query", "q"]


def test_search_price_words_are_a_window_relaxed_when_nothing_is_in_it(client):
    """"Product 7 under 80" searches "Product 7" among items priced at most 80 (item i costs 10 + i); a window no
    match falls in gives the matches as if no price was named, and the answer says the price was relaxed."""
    answer = client.get("/v1/search", params={"q": "Product 7 under 80", "k": 20}).json()
    ids = [i["item_id"] for i in answer["items"]]
    assert ids and set(ids) <= {"i7"} | {f"i{j}" for j in range(70, 71)}
    assert answer["understood"]["text"] == "product 7" and answer["understood"]["price"] == {"max": 80.0}
    wide = client.get("/v1/search", params={"q": "Product 7", "k": 20}).json()
    assert {i["item_id"] for i in wide["items"]} - set(ids)  # i71..i79 cost more than 80
    none = client.get("/v1/search", params={"q": "Product 7 under 5", "k": 20}).json()
    assert [i["item_id"] for i in none["items"]] == [i["item_id"] for i in wide["items"]]
    assert none["understood"]["relaxed"] == ["price"]


def test_catalogue_upsert_makes_new_product_recommendable(client):
    """No retraining: the new item gets the reserved new-arrival slot in a shopper's list."""
    r = client.put("/v1/items/brand-new", json={"title": "Brand new lamp", "category": "cat0", "price": 12.5,
                                                "image_base64": PNG, "attributes": {"colour": "red"}}, headers=auth())
    assert r.status_code == 200, r.text
    item = client.get("/v1/items/brand-new").json()
    assert item["title"] == "Brand new lamp" and item["known_to_model"] is False
    assert item["image"] == "/v1/items/brand-new/image" and item["attributes"] == {"colour": "red"}
    image = client.get("/v1/items/brand-new/image")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    post_events(client, {"user_id": "n", "item_id": "i1"})
    answer = client.get("/v1/users/n/recommendations", params={"k": 5, "details": True}).json()
    assert answer["items"][-1]["item_id"] == "brand-new" and answer["items"][-1]["reason"] == "new_arrival"
    assert answer["items"][-1]["title"] == "Brand new lamp"
    # its own similar-items answer works too (same category, no behaviour yet)
    similar = client.get("/v1/items/brand-new/similar", params={"k": 3}).json()
    assert similar["items"] and all(i["reason"] == "same_category" for i in similar["items"])
    # an event on it is accepted and shows in the history
    post_events(client, {"user_id": "n", "item_id": "brand-new"})
    assert client.get("/v1/users/n/events").json()["events"][0]["item_id"] == "brand-new"


def test_items_batch_and_pages(client):
    body = {"items": [{"item_id": f"b{j}", "title": f"Batch {j}", "category": "batch", "price": j} for j in range(3)]}
    assert client.post("/v1/items", json=body, headers=auth()).json() == {"accepted": 3}
    page = client.get("/v1/items", params={"category": "batch", "limit": 2}).json()
    assert page["total"] == 3 and [i["item_id"] for i in page["items"]] == ["b0", "b1"]
    assert client.get("/v1/items", params={"category": "batch", "offset": 2}).json()["items"][0]["item_id"] == "b2"
    known = client.get("/v1/items/i5").json()
    assert known["category"] == "cat0" and known["price"] == 15.0 and known["known_to_model"] is True
    assert client.get("/v1/items/does-not-exist").status_code == 404
    assert client.get("/v1/items/i5/image").status_code == 404
    dup = client.post("/v1/items", json={"items": [{"item_id": "x"}, {"item_id": "x"}]}, headers=auth())
    assert dup.status_code == 422 and dup.json()["errors"][0]["loc"][-1] == "items"
    # replacing an item: the rules see its new stock state at once
    client.put("/v1/items/i1", json={"title": "P1", "category": "cat0", "price": 11, "in_stock": False},
               headers=auth())
    post_events(client, {"user_id": "r", "item_id": "i0"})
    assert "i1" not in [i["item_id"] for i in client.get("/v1/users/r/recommendations", params={"k": 20}).json()["items"]]


def test_runs_plots_stats(client):
    runs = client.get("/v1/runs").json()
    assert runs["serving"] == "current" and runs["current"]["model"] == "itemknn"
    assert runs["current"]["plots"] and runs["current"]["report"].startswith("#")
    assert "test" in runs["current"]["metrics"]
    assert runs["current"]["sales_followed"] is None  # an item-kNN run follows no sales (a ranker does)
    png = client.get(runs["current"]["plots"][0])
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert client.get("/v1/runs/current/plots/..%2Fconfig.json").status_code == 404
    assert client.get("/v1/runs/current/plots/nope.png").status_code == 404
    post_events(client, {"user_id": "st", "item_id": "i1", "type": "view"},
                {"user_id": "st", "item_id": "i2", "type": "purchase"})
    stats = client.get("/v1/stats/events", params={"bucket": "minute"}).json()
    assert stats["total"] == 2 and stats["bucket_seconds"] == 60
    assert stats["buckets"][-1]["by_type"] == {"view": 1, "purchase": 1} and stats["buckets"][-1]["count"] == 2


def test_pages_and_static(client):
    assert client.get("/").status_code == 200 and "html" in client.get("/").headers["content-type"]
    assert client.get("/admin").status_code == 200
    from deepshelf.api.routes.system import web_dir

    for asset in ("style.css", "api.js"):
        if (web_dir() / asset).is_file():
            assert client.get(f"/static/{asset}").status_code == 200
    assert client.get("/static/no-such-file.js").status_code == 404
    assert client.get("/openapi.json").json()["info"]["title"] == "deepshelf"


# ---- auth -----------------------------------------------------------------------------------------------------
WRITES = [("post", "/v1/events", {"events": [{"user_id": "a", "item_id": "i1"}]}),
          ("put", "/v1/items/z", {"title": "z"}),
          ("post", "/v1/items", {"items": [{"item_id": "z"}]}),
          ("post", "/v1/admin/reload", None)]


@pytest.mark.parametrize("method,path,body", WRITES)
def test_writes_need_a_valid_key(sqlite_client, method, path, body):
    call = getattr(sqlite_client, method)
    for headers in ({"X-API-Key": ""}, {"X-API-Key": "wrong"}):
        r = call(path, json=body, headers=headers)
        assert r.status_code == 401 and "X-API-Key" in r.json()["detail"]
    assert call(path, json=body, headers={"X-API-Key": "other-key"}).status_code == 200


def test_reads_can_require_a_key(run_link, tmp_path):
    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app
    from tests.api.conftest import make_settings

    app = create_app(make_settings(run_link, f"sqlite:///{tmp_path / 'r.db'}", require_key_for_reads=True))
    with TestClient(app) as c:
        assert c.get("/v1/popular").status_code == 401
        assert c.get("/v1/popular", headers=auth()).status_code == 200
        assert c.get("/health").status_code == 200  # probes stay open


def test_no_keys_configured_refuses_writes(run_link, tmp_path):
    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app
    from tests.api.conftest import make_settings

    settings = make_settings(run_link, f"sqlite:///{tmp_path / 'n.db'}", api_keys="", public_keys="")
    with TestClient(create_app(settings)) as c:
        r = c.post("/v1/events", json={"events": [{"user_id": "a", "item_id": "b"}]}, headers=auth())
        assert r.status_code == 401 and "DEEPSHELF_API_KEYS" in r.json()["detail"]


# ---- bad input: 4xx naming the field, never 500 -----------------------------------------------------------------
@pytest.mark.parametrize("body,field", [
    ({"events": [{"user_id": "a", "item_id": "b", "type": "teleport"}]}, "type"),
    ({"events": [{"user_id": "", "item_id": "b"}]}, "user_id"),
    ({"events": [{"item_id": "b"}]}, "user_id"),
    ({"events": [{"user_id": "a", "item_id": "b", "timestamp": "yesterday"}]}, "timestamp"),
    ({"events": [{"user_id": "a", "item_id": "b", "timestamp": "0001-01-01T00:00:00"}]}, "timestamp"),
    ({"events": [{"user_id": "a", "item_id": "b", "value": "lots"}]}, "value"),
    ({"events": [{"user_id": "a", "item_id": "b", "colour": "red"}]}, "colour"),
    ({"events": []}, "events"),
    ({}, "events"),
])
def test_bad_events_name_the_field(sqlite_client, body, field):
    r = sqlite_client.post("/v1/events", json=body, headers=auth())
    assert r.status_code == 422, r.text
    assert field in [str(p) for p in r.json()["errors"][0]["loc"]]


def test_limits(sqlite_client):
    settings = sqlite_client.app.state.settings
    too_many = {"events": [{"user_id": "a", "item_id": "b"}] * (settings.max_batch + 1)}
    r = sqlite_client.post("/v1/events", json=too_many, headers=auth())
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "events"]
    huge = b'{"events": [' + b'{"user_id": "a", "item_id": "b"},' * 40_000 + b"]}"
    r = sqlite_client.post("/v1/events", content=huge, headers={**auth(), "content-type": "application/json"})
    assert r.status_code == 413
    r = sqlite_client.get("/v1/popular", params={"k": settings.max_k + 1})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "k"]
    assert sqlite_client.get("/v1/popular", params={"k": 0}).status_code == 422
    r = sqlite_client.post("/v1/sessions/recommendations", json={"item_ids": ["i1"], "k": 10**6})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "k"]
    r = sqlite_client.post("/v1/sessions/recommendations", json={"item_ids": ["i"] * (settings.max_session_items + 1)})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "item_ids"]
    r = sqlite_client.put("/v1/items/x", json={"image_base64": "not base64!"}, headers=auth())
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "image_base64"]
    r = sqlite_client.put("/v1/items/x", json={"image_base64": base64.b64encode(b"MZ exe").decode()}, headers=auth())
    assert r.status_code == 422
    r = sqlite_client.put("/v1/items/x", json={"price": -1}, headers=auth())
    assert r.status_code == 422 and r.json()["errors"][0]["loc"][-1] == "price"
    r = sqlite_client.get("/v1/popular", params={"boost": "cat0"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "boost"]
    r = sqlite_client.get("/v1/popular", params={"min_price": 50, "max_price": 10})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"][-1] == "min_price"
    r = sqlite_client.post("/v1/events", content=b"{not json", headers={**auth(), "content-type": "application/json"})
    assert r.status_code == 422


def test_runs_lists_a_linked_run_once(runs_dir, tmp_path):
    """`current` pointing at a sibling run: that run is listed once, as the served one."""
    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app

    shop_runs = tmp_path / "runs"
    shop_runs.mkdir()
    for name in ("knn", "pop"):
        (shop_runs / name).symlink_to(runs_dir / name)
    (shop_runs / "current").symlink_to("knn")
    with TestClient(create_app(make_settings(shop_runs / "current", f"sqlite:///{tmp_path / 's.db'}")),
                    headers=auth()) as client:
        runs = client.get("/v1/runs").json()["runs"]
    assert sorted(r["name"] for r in runs) == ["current", "pop"]
    assert [r["name"] for r in runs if r["serving"]] == ["current"]
