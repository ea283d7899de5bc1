"""Numbers at the edge (issue 27, F3), on both stores: non-finite or overflowing numbers are refused on every route
that takes one, GA4 included (422 / 400 naming the field), nothing of them is stored, and an event value stored
before the bound (Infinity, 1e300) cannot break the analytics answer's schema (revenue is always a number)."""

from __future__ import annotations

import math
import time

import pytest

from tests.api.conftest import auth

HUGE_INT = "1" + "0" * 400  # a JSON integer no float holds
# (method, path, JSON body text with {} for the number) -> the field a refusal must name
BODIES = [
    ("POST", "/v1/events", '{"events": [{"user_id": "n", "item_id": "i1", "type": "purchase", "value": %s}]}', "value"),
    ("POST", "/v1/events", '{"events": [{"user_id": "n", "item_id": "i1", "timestamp": %s}]}', "timestamp"),
    ("PUT", "/v1/items/n1", '{"title": "x", "price": %s}', "price"),
    ("POST", "/v1/items", '{"items": [{"item_id": "n2", "price": %s}]}', "price"),
    ("PUT", "/v1/items/n3", '{"attributes": {"weight": %s}}', "weight"),
    ("POST", "/v1/events/ga4", '{"client_id": "n", "events": [{"name": "purchase", "params": {"items": '
                               '[{"item_id": "i1", "price": %s, "quantity": 10}]}}]}', "price"),
    ("POST", "/v1/events/ga4", '{"client_id": "n", "events": [{"name": "purchase", "params": {"items": '
                               '[{"item_id": "i1", "price": 5, "quantity": %s}]}}]}', "quantity"),
    ("POST", "/v1/events/ga4", '{"client_id": "n", "events": [{"name": "purchase", "params": {"value": %s, '
                               '"items": [{"item_id": "i1"}]}}]}', "value"),
    ("POST", "/v1/events/ga4", '{"client_id": "n", "timestamp_micros": %s, "events": [{"name": "view_item", '
                               '"params": {"items": [{"item_id": "i1"}]}}]}', "timestamp_micros"),
    ("POST", "/v1/sessions/recommendations", '{"item_ids": ["i1"], "rules": {"min_price": %s}}', "min_price"),
]
NUMBERS = ["1e309", "-1e309", "1e300", HUGE_INT, "NaN", "Infinity"]


@pytest.mark.parametrize("method, path, body, field", BODIES, ids=[f"{b[1]}:{b[3]}" for b in BODIES])
def test_non_finite_and_overflowing_numbers_are_refused(client, method, path, body, field):
    for number in NUMBERS:
        if field in ("min_price", "weight") and number == "1e300":
            continue  # a finite bound on a filter, a free-form attribute: harmless
        r = client.request(method, path, content=body % number, headers={**auth(), "Content-Type": "application/json"})
        assert r.status_code in (400, 422), (number, r.status_code, r.text)
        assert field in r.text, (number, r.text)
    assert client.get("/v1/users/n/events").json()["events"] == []  # nothing stored
    assert client.get("/v1/items/n1").status_code == 404


def test_ga4_price_times_quantity_is_bounded(client):
    body = {"client_id": "g", "events": [{"name": "purchase", "params": {"items": [
        {"item_id": "i1", "price": 9e8, "quantity": 10}]}}]}  # each fine, the product 9e9 is not
    r = client.post("/v1/events/ga4", json=body)
    assert r.status_code == 400 and "price x quantity" in r.text, r.text
    body["events"][0]["params"]["items"][0]["quantity"] = 1
    assert client.post("/v1/events/ga4", json=body).json() == {"accepted": 1, "skipped": 0}


@pytest.mark.parametrize("text", ["inf", "nan", "1e400", "-inf"])
def test_query_numbers_are_finite(client, text):
    for params in ({"min_price": text}, {"max_price": text}, {"boost": f"cat0:{text}"}):
        r = client.get("/v1/popular", params=params)
        assert r.status_code == 422, (params, r.text)


def test_a_legacy_infinite_value_keeps_the_analytics_schema(client):
    from deepshelf.storage import Event

    lst = client.get("/v1/popular", params={"k": 3}).json()
    client.app.state.service.impressions.flush()
    now = time.time()
    clicked = lst["items"][0]["item_id"]
    assert client.post("/v1/events", json={"events": [{"user_id": "x", "item_id": clicked, "type": "view",
                                                       "recommendation_id": lst["recommendation_id"],
                                                       "timestamp": now - 60}]}).status_code == 200
    # stored before values were bounded (as the probe stored them through GA4)
    client.app.state.service.store.add_events([Event("x", clicked, "purchase", now - 30, value=math.inf),
                                               Event("x", clicked, "purchase", now - 20, value=1e300)])
    r = client.get("/v1/analytics/recommendations")
    assert r.status_code == 200, r.text
    total = r.json()["total"]
    assert isinstance(total["revenue"], float) and math.isfinite(total["revenue"]), total
    assert all(v is None or math.isfinite(v) for v in total.values() if isinstance(v, float))
