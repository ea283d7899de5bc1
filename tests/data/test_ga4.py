"""GA4: Measurement Protocol bodies and the BigQuery export map to the same deepshelf events."""

import json

import pytest

from deepshelf.data.datasets import load_dataset
from deepshelf.data.ga4 import map_measurement_protocol, read_bigquery_export
from deepshelf.errors import DeepshelfError


def test_measurement_protocol_body_maps_each_item():
    body = {"client_id": "c1", "user_id": "u1", "timestamp_micros": 1_700_000_000_000_000, "events": [
        {"name": "view_item", "params": {"items": [{"item_id": "A"}]}},
        {"name": "purchase", "params": {"value": 30, "items": [{"item_id": "A", "price": 10, "quantity": 2},
                                                               {"item_id": "B", "price": 10}]},
         "timestamp_micros": 1_700_000_100_000_000},
        {"name": "search", "params": {"search_term": "mug"}},
        {"name": "page_view", "params": {}}]}
    mapped = map_measurement_protocol(body, now=0.0)
    assert mapped.rows == [("u1", "A", "view", 1_700_000_000.0, None), ("u1", "A", "purchase", 1_700_000_100.0, 20.0),
                           ("u1", "B", "purchase", 1_700_000_100.0, 10.0)]
    assert mapped.skipped == 2
    anonymous = map_measurement_protocol({"client_id": "c1", "events": [
        {"name": "add_to_cart", "params": {"items": [{"item_id": "A"}]}}]}, now=5.0)
    assert anonymous.rows == [("c1", "A", "cart", 5.0, None)]


@pytest.mark.parametrize("body, message", [
    ({"events": []}, "client_id or user_id"),
    ({"client_id": "c", "events": [{"name": "view_item", "params": {"items": [{}]}}]},
     r"body.events\[0\].params.items\[0\].item_id: missing"),
    ({"client_id": "c", "events": [{"name": "purchase", "params": {"items": [{"item_id": "A", "price": "x"}]}}]},
     r"items\[0\].price: 'x' is not a number"),
])
def test_bad_bodies_name_the_field(body, message):
    with pytest.raises(DeepshelfError, match=message):
        map_measurement_protocol(body, now=0.0)


def test_bigquery_export_trains_by_path(tmp_path):
    day = 86_400_000_000
    rows = []
    for u in range(30):
        for d, name in enumerate(("view_item", "add_to_cart", "purchase", "page_view")):
            rows.append({"event_name": name, "event_timestamp": str((u * 4 + d) * day), "user_pseudo_id": f"p{u}",
                         "user_id": None if u % 2 else f"u{u}",
                         "items": [] if name == "page_view" else [{"item_id": f"i{u % 7}", "price": 2.0,
                                                                   "quantity": 3}]})
    path = tmp_path / "events_20240101.ndjson"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    frame = read_bigquery_export(path)
    assert frame.height == 90 and set(frame["type"]) == {"view", "cart", "purchase"}
    assert frame.filter(frame["type"] == "purchase")["value"].to_list()[0] == 6.0
    assert {"u0", "p1"} <= set(frame["user"])
    ds = load_dataset(str(path))
    assert ds.timestamped and len(ds.interactions) == 90 and ds.interactions.n_users == 30
    path.write_text(json.dumps(rows[0]) + "\n{broken\n")
    with pytest.raises(DeepshelfError, match="line 2: not JSON"):
        load_dataset(str(path))
