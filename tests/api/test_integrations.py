"""POST /v1/items:import (Merchant Center feeds, private key) and POST /v1/events/ga4 (Measurement Protocol, public
key): what they store, what they refuse, and which key may call them."""

from __future__ import annotations

from .conftest import PUBLIC_KEY

FEED = """<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel>
<item><g:id>NEW-MUG-1</g:id><title>Red Enamel Camping Mug</title><g:price>12.50 EUR</g:price>
<g:availability>out_of_stock</g:availability><g:product_type>Home &gt; Kitchen</g:product_type></item>
<item><g:id>NEW-MUG-2</g:id><title>Blue Mug</title><g:price>cheap</g:price></item>
<item><g:id>NEW-PAN-1</g:id><title>Pan</title><g:price>20 EUR</g:price><g:sale_price>15 EUR</g:sale_price></item>
</channel></rss>"""


def test_feed_import_stores_good_items_and_names_bad_ones(sqlite_client):
    res = sqlite_client.post("/v1/items:import", content=FEED, headers={"Content-Type": "application/xml"})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["accepted"] == 2
    assert body["errors"] == [{"position": 2, "item_id": "NEW-MUG-2", "field": "g:price",
                               "message": "'cheap' is not a price (expected like '12.50 EUR')"}]
    mug = sqlite_client.get("/v1/items/NEW-MUG-1").json()
    assert (mug["title"], mug["price"], mug["in_stock"], mug["category"]) == ("Red Enamel Camping Mug", 12.5,
                                                                             False, "Kitchen")
    assert sqlite_client.get("/v1/items/NEW-PAN-1").json()["price"] == 15.0
    assert sqlite_client.get("/v1/items/NEW-MUG-2").status_code == 404
    bad = sqlite_client.post("/v1/items:import", content="<rss><channel><item>", headers={"Content-Type": "application/xml"})
    assert bad.status_code == 400 and "not a well-formed XML feed" in bad.json()["detail"]


def test_feed_import_needs_a_private_key(sqlite_client):
    res = sqlite_client.post("/v1/items:import", content=FEED, headers={"X-API-Key": PUBLIC_KEY})
    assert res.status_code == 403
    assert sqlite_client.get("/v1/items/NEW-MUG-1").status_code == 404


def test_ga4_body_becomes_events_with_a_public_key(sqlite_client):
    body = {"client_id": "555.777", "user_id": "u0_1", "timestamp_micros": 1_700_000_000_000_000, "events": [
        {"name": "view_item", "params": {"items": [{"item_id": "i3", "item_name": "Product 3"}]}},
        {"name": "purchase", "params": {"items": [{"item_id": "i4", "price": 10.0, "quantity": 3}]}},
        {"name": "search", "params": {"search_term": "mug"}}]}
    res = sqlite_client.post("/v1/events/ga4", json=body, headers={"X-API-Key": PUBLIC_KEY})
    assert res.status_code == 200, res.text
    assert res.json() == {"accepted": 2, "skipped": 1}
    events = sqlite_client.get("/v1/users/u0_1/events?limit=2").json()["events"]
    assert {(e["item_id"], e["type"], e["value"]) for e in events} == {("i3", "view", None), ("i4", "purchase", 30.0)}
    anonymous = {"client_id": "555.777", "events": [{"name": "add_to_cart", "params": {"items": [{"item_id": "i5"}]}}]}
    assert sqlite_client.post("/v1/events/ga4", json=anonymous).json()["accepted"] == 1
    assert sqlite_client.get("/v1/users/555.777/events").json()["events"][0]["type"] == "cart"


def test_ga4_bad_bodies_are_422_naming_the_field(sqlite_client):
    no_shopper = sqlite_client.post("/v1/events/ga4", json={"events": []})
    assert no_shopper.status_code == 422 and no_shopper.json()["errors"][0]["loc"][-1] == "client_id"
    no_item = sqlite_client.post("/v1/events/ga4", json={"client_id": "c", "events": [
        {"name": "view_item", "params": {"items": [{"price": 1.0}]}}]})
    assert no_item.status_code == 422 and "item_id" in no_item.json()["errors"][0]["loc"]
    future = sqlite_client.post("/v1/events/ga4", json={"client_id": "c", "timestamp_micros": 10**19, "events": [
        {"name": "view_item", "params": {"items": [{"item_id": "i1"}]}}]})
    assert future.status_code == 422
    assert sqlite_client.get("/v1/users/c/events").json()["events"] == []
