"""Attribution (issue 17): a click is an event carrying a shown list's recommendation_id on one of its items; a
purchase of that item by the same shopper within the window after the click is attributed (last click) with its
value as revenue; a purchase after the window, or without a click, is not. The intervals match hand-computed
values. Checked on the store (both databases) and through /v1/analytics/recommendations."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from deepshelf.api.app import create_app
from deepshelf.engine.attribution import per_mille_interval, report, wilson
from deepshelf.storage import Event, Impression, open_store
from deepshelf.storage.attribution import NEW_COUNTS, Scope
from tests.api.conftest import PUBLIC_KEY, auth, make_settings

HOUR = 3600.0


# ---- the intervals, against values worked out by hand -----------------------------------------------------------
@pytest.mark.parametrize("k, n, low, high", [
    # Wilson (z = 1.96): centre (p + z²/2n) / (1 + z²/n), half z/(1 + z²/n) * sqrt(p(1-p)/n + z²/4n²)
    (0, 10, 0.0, 0.2775),  # centre 0.19208/1.38415 = 0.13877, half 0.13877: [0, 0.27753]
    (1, 10, 0.0179, 0.4042),  # centre 0.29208/1.38415 = 0.21102, half 1.41603*0.13633 = 0.19305
    (5, 10, 0.2366, 0.7634),  # centre 0.5, half 1.41603 * 0.18726 = 0.26340
    (10, 10, 0.7225, 1.0),
    (30, 1000, 0.02108, 0.04254),  # centre 0.031920/1.003841 = 0.031798, half 1.952492*0.005462 = 0.010664
])
def test_wilson_interval_matches_hand_computed_values(k, n, low, high):
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_wilson_is_undefined_without_impressions():
    assert wilson(0, 0) == (None, None)


def test_revenue_per_mille_interval_matches_hand_computed_values():
    # revenues per list 2 and 4: mean 3, s² = ((2-3)² + (4-3)²) / 1 = 2, se = sqrt(2/2) = 1, half 1.96
    lo, hi = per_mille_interval(6.0, 20.0, 2)
    assert lo == pytest.approx(1000 * (3 - 1.959964)) and hi == pytest.approx(1000 * (3 + 1.959964))
    # 10, 0, 0, 0: mean 2.5, s² = (56.25 + 3 * 6.25) / 3 = 25, se = 2.5, half 4.8999: the low end clipped at 0
    lo, hi = per_mille_interval(10.0, 100.0, 4)
    assert lo == 0.0 and hi == pytest.approx(1000 * (2.5 + 1.959964 * 2.5))
    assert per_mille_interval(5.0, 25.0, 1) == (None, None)


# ---- the attribution rule on the store ------------------------------------------------------------------------------
T0 = 1_700_000_000.0


def shop(database: str):
    """Lists r1..r4 shown at T0; the events below click, buy and miss in every way the rule distinguishes."""
    store = open_store(database)
    store.add_impressions([
        Impression("r1", T0, "alice", None, "home", "recommendations", "v1", None, None, "\na\nb\nc\n"),
        Impression("r2", T0, "bob", None, "home", "recommendations", "v1", None, None, "\na\nb\n"),
        Impression("r3", T0, "carol", None, "product_page", "similar", "v2", None, None, "\nx\ny\n"),
        Impression("r4", T0, "dan", None, "home", "recommendations", "v1", None, None, "\nd\n"),
        Impression("r5", T0 + HOUR, "erin", None, "home", "popular", "v1", None, None, "\ne\nf\n"),
    ])
    store.add_events([
        # alice clicks b (position 2) in r1 and buys it 1 h later: attributed, 30.0
        Event("alice", "b", "view", T0 + 10, recommendation_id="r1"),
        Event("alice", "b", "purchase", T0 + 10 + HOUR, value=30.0),
        # ... and buys c, which she never clicked: not attributed
        Event("alice", "c", "purchase", T0 + 20, value=99.0),
        # bob clicks an item that was not in r2: not a click
        Event("bob", "z", "view", T0 + 10, recommendation_id="r2"),
        Event("bob", "z", "purchase", T0 + 20, value=5.0),
        # carol adds y from r3 to her cart, buys it 25 h later: a click and a cart, but after the 24 h window
        Event("carol", "y", "cart", T0 + 10, recommendation_id="r3"),
        Event("carol", "y", "purchase", T0 + 10 + 25 * HOUR, value=70.0),
        # dan buys d (shown in r4) without clicking it: not attributed
        Event("dan", "d", "purchase", T0 + 30, value=12.0),
        # erin clicks e in r5, and someone else buys e: not hers
        Event("erin", "e", "view", T0 + HOUR + 5, recommendation_id="r5"),
        Event("frank", "e", "purchase", T0 + HOUR + 50, value=8.0),
    ])
    return store


def test_attribution_windows_clicks_and_shoppers(database):
    store = shop(database)
    try:
        rows = store.attributed_totals(Scope(), ["placement"], window_s=24 * HOUR)
        home, page = rows
        # (lists stored without their new products: none is known, none counted)
        assert home == {"placement": "home", "impressions": 4, "clicks": 2, "carts": 0, "conversions": 1,
                        "purchases": 1, "revenue": 30.0, "revenue_sq": 900.0, **dict.fromkeys(NEW_COUNTS, 0)}
        assert page == {"placement": "product_page", "impressions": 1, "clicks": 1, "carts": 1, "conversions": 0,
                        "purchases": 0, "revenue": 0.0, "revenue_sq": 0.0, **dict.fromkeys(NEW_COUNTS, 0)}
        # a 26 h window takes carol's purchase too; a 30 min one loses alice's
        wide = {r["placement"]: r for r in store.attributed_totals(Scope(), ["placement"], window_s=26 * HOUR)}
        assert wide["product_page"]["revenue"] == 70.0 and wide["product_page"]["conversions"] == 1
        narrow = store.attributed_totals(Scope(), ["placement"], window_s=HOUR / 2)
        assert sum(r["conversions"] for r in narrow) == 0
        # the scope: by time, placement, and the buckets of the series
        assert [r["impressions"] for r in store.attributed_totals(Scope(since=T0 + 1), ["placement"])] == [1]
        assert store.attributed_totals(Scope(placement="product_page"), ["model_version"])[0]["model_version"] == "v2"
        series = store.attributed_totals(Scope(), ["bucket"], bucket_s=HOUR, window_s=24 * HOUR)
        assert [(r["bucket"], r["impressions"], r["clicks"]) for r in series] == [(T0 // HOUR * HOUR, 4, 2),
                                                                                 (T0 // HOUR * HOUR + HOUR, 1, 1)]
    finally:
        store.close()


def test_new_product_shares_of_slots_and_clicks_match_hand_counts(database):
    """Lists recorded with the new products they showed, one list from before that was recorded, and clicks on
    new and old items: the shares per placement and overall, counted by hand."""
    store = open_store(database)
    try:
        store.add_impressions([
            Impression("n1", T0, "alice", None, "home", "recommendations", "v1", None, None, "\na\nb\nc\nd\n",
                       "\nc\nd\n"),  # 2 new of 4
            Impression("n2", T0, "bob", None, "home", "popular", "v1", None, None, "\na\ne\n", "\n\n"),  # 0 of 2
            Impression("old", T0, "dan", None, "home", "popular", "v1", None, None, "\na\nb\n"),  # unknown
            Impression("n3", T0, "carol", None, "product_page", "similar", "v1", None, None, "\nf\nglühbirne\n",
                       "\nglühbirne\n"),  # 1 new of 2 (a multi-byte id counts once)
            Impression("n4", T0, "erin", None, "product_page", "similar", "v1", None, None, "\n\n", "\n\n"),  # empty
        ])
        store.add_events([
            # alice: c (new) viewed and carted (one clicked item), a (old) viewed: 2 clicked items, 1 new
            Event("alice", "c", "view", T0 + 10, recommendation_id="n1"),
            Event("alice", "c", "cart", T0 + 20, recommendation_id="n1"),
            Event("alice", "a", "view", T0 + 30, recommendation_id="n1"),
            Event("bob", "e", "view", T0 + 10, recommendation_id="n2"),  # old
            Event("bob", "c", "view", T0 + 20, recommendation_id="n2"),  # not in n2: not a click
            Event("dan", "b", "view", T0 + 10, recommendation_id="old"),  # a click, its newness unknown
            Event("carol", "glühbirne", "view", T0 + 10, recommendation_id="n3"),  # new
            Event("carol", "glühbirne", "purchase", T0 + 20, value=9.0),  # (a purchase is no click)
        ])
        home, page = store.attributed_totals(Scope(), ["placement"])
        assert {k: home[k] for k in ("impressions", "clicks", *NEW_COUNTS)} == {
            "impressions": 3, "clicks": 3, "known_impressions": 2, "items_shown": 6, "new_items_shown": 2,
            "items_clicked": 3, "new_items_clicked": 1}
        assert {k: page[k] for k in ("impressions", "clicks", *NEW_COUNTS)} == {
            "impressions": 2, "clicks": 1, "known_impressions": 2, "items_shown": 2, "new_items_shown": 1,
            "items_clicked": 1, "new_items_clicked": 1}
        answer = report(store, Scope(), 86400.0, 86400.0)
        assert answer["total"]["new_products"] == {
            "impressions": 4, "unknown_impressions": 1, "items_shown": 8, "new_items_shown": 3,
            "impression_share": 3 / 8, "items_clicked": 4, "new_items_clicked": 2, "click_share": 2 / 4}
        by_placement = {g["placement"]: g["new_products"] for g in answer["groups"]}
        assert (by_placement["home"]["impression_share"], by_placement["home"]["click_share"]) == (2 / 6, 1 / 3)
        assert by_placement["home"]["unknown_impressions"] == 1
        assert (by_placement["product_page"]["impression_share"], by_placement["product_page"]["click_share"]) \
            == (1 / 2, 1.0)
        assert answer["total"]["clicks"] == 4 and answer["total"]["impressions"] == 5  # the old fields as before
        assert store.impressions_of("old").new_items is None and store.impressions_of("n2").new_items == "\n\n"
    finally:
        store.close()


def test_shares_are_null_where_no_list_is_known(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        store.add_impressions([Impression("old", T0, "u", None, "home", "popular", "v1", None, None, "\na\n")])
        store.add_events([Event("u", "a", "view", T0 + 1, recommendation_id="old")])
        numbers = report(store, Scope(), 86400.0, 86400.0)["total"]
        assert numbers["clicks"] == 1 and numbers["new_products"] == {
            "impressions": 0, "unknown_impressions": 1, "items_shown": 0, "new_items_shown": 0,
            "impression_share": None, "items_clicked": 0, "new_items_clicked": 0, "click_share": None}
    finally:
        store.close()


def test_a_purchase_goes_to_the_latest_click_within_the_window(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        store.add_impressions([Impression(r, T0, "u", None, "home", "popular", v, "exp", v, "\na\n")
                               for r, v in (("early", "A"), ("late", "B"), ("unclicked", "B"))])
        store.add_events([Event("u", "a", "view", T0 + 10, recommendation_id="early"),
                          Event("u", "a", "view", T0 + 20, recommendation_id="late"),
                          Event("u", "a", "purchase", T0 + 30, value=4.0)])
        assert store.variant_summary("exp") == [
            {"variant": "A", "impressions": 1, "clicks": 1, "conversions": 0, "revenue": 0.0},
            {"variant": "B", "impressions": 2, "clicks": 1, "conversions": 1, "revenue": 4.0}]
        assert store.variant_summary("no-such-experiment") == []
    finally:
        store.close()


# ---- through the HTTP API ----------------------------------------------------------------------------------------
def test_analytics_endpoint_reports_attributed_numbers(run_link, tmp_path):
    settings = make_settings(run_link, f"sqlite:///{tmp_path / 'store.db'}", attribution_window_s=600)
    with TestClient(create_app(settings), headers=auth()) as c:
        lists = [c.get("/v1/popular", params={"k": 3}).json() for _ in range(4)]
        c.app.state.service.impressions.flush()
        now = time.time()
        first, second = lists[0], lists[1]
        clicked, other = first["items"][1]["item_id"], second["items"][0]["item_id"]
        events = [
            {"user_id": "s1", "item_id": clicked, "type": "cart", "recommendation_id": first["recommendation_id"],
             "timestamp": now - 100},
            {"user_id": "s1", "item_id": clicked, "type": "purchase", "value": 25.0, "timestamp": now - 50},
            {"user_id": "s2", "item_id": other, "type": "view", "recommendation_id": second["recommendation_id"],
             "timestamp": now - 1000},
            {"user_id": "s2", "item_id": other, "type": "purchase", "value": 40.0, "timestamp": now - 10},  # 990 s
        ]
        assert c.post("/v1/events", json={"events": events}).status_code == 200
        answer = c.get("/v1/analytics/recommendations", params={"bucket": "hour"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        total = body["total"]
        assert (total["impressions"], total["clicks"], total["carts"], total["conversions"]) == (4, 2, 1, 1)
        assert total["revenue"] == 25.0 and total["revenue_per_1000"] == pytest.approx(6250.0)
        assert total["ctr"] == 0.5 and (total["ctr_low"], total["ctr_high"]) == pytest.approx(wilson(2, 4))
        assert (total["conversion_low"], total["conversion_high"]) == pytest.approx(wilson(1, 4))
        # per-list revenue 25, 0, 0, 0
        assert (total["revenue_per_1000_low"], total["revenue_per_1000_high"]) == pytest.approx(
            per_mille_interval(25.0, 625.0, 4))
        [group] = body["groups"]
        assert group["placement"] == "home" and group["variant"] is None and group["impressions"] == 4
        assert group["model_version"] == first["model_version"]
        assert sum(p["impressions"] for p in body["series"]) == 4 and body["attribution_window_s"] == 600
        # filters: another placement has nothing; a range that ends before the lists were shown neither
        assert c.get("/v1/analytics/recommendations", params={"placement": "cart"}).json()["total"]["impressions"] == 0
        assert c.get("/v1/analytics/recommendations",
                     params={"to": int(now) - 3600}).json()["total"]["impressions"] == 0
        bad = c.get("/v1/analytics/recommendations", params={"from": int(now), "to": int(now) - 10})
        assert bad.status_code == 422 and "from" in bad.text
        # shoppers' data: a private key only
        assert c.get("/v1/analytics/recommendations", headers={"X-API-Key": PUBLIC_KEY}).status_code == 403
