"""A shop's first hour, end to end, with the README's "From your own shop's files" commands: a Merchant Center
feed of 1,000 products and a GA4 BigQuery export of 20,000 events (generated here, with planted structure) go into
a SQLite store, a model is trained from it, served, and the widget's script and the lists it asks for answer.

Planted: the products form 10 departments (`g:product_type`) and every shopper only ever touches one department,
so a shopper's list, a product's "similar" list and a cart's list must come from that department.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from xml.sax.saxutils import escape

import httpx
import numpy as np
import pytest

from tests.conftest import free_port
from tests.api.conftest import wait_until_serving

PRIVATE, PUBLIC = "first-hour-private", "first-hour-public"
TOKEN_SECRET = "first-hour-token-secret"
DEPARTMENTS = ["Mugs", "Lamps", "Towels", "Candles", "Vases", "Rugs", "Clocks", "Baskets", "Frames", "Cushions"]
COLOURS = ["Red", "Blue", "Green", "Ivory", "Black", "Amber", "Teal", "Rose", "Slate", "Olive"]
N_PRODUCTS, N_EVENTS, N_SHOPPERS = 1000, 20_000, 800
DAY_US = 86_400 * 1_000_000
START_US = 1_714_521_600 * 1_000_000  # 2024-05-01


def department(item_id: str) -> int:
    return int(item_id.split("-")[1]) % len(DEPARTMENTS)


def write_feed(path: Path) -> None:
    """RSS 2.0 with the g: namespace, as Merchant Center exports it: product i belongs to department i % 10."""
    entries = []
    for i in range(N_PRODUCTS):
        dep = i % len(DEPARTMENTS)
        title = f"{COLOURS[(i // len(DEPARTMENTS)) % len(COLOURS)]} {DEPARTMENTS[dep][:-1]} No. {i}"
        entries.append(
            f"<item><g:id>SKU-{i}</g:id><title>{escape(title)}</title>"
            f"<description>{escape(title)} for the home, from our {DEPARTMENTS[dep].lower()} range.</description>"
            f"<link>https://shop.example/p/SKU-{i}</link><g:image_link>https://shop.example/img/{i}.jpg</g:image_link>"
            f"<g:price>{5 + i % 40}.50 GBP</g:price><g:availability>in_stock</g:availability>"
            f"<g:product_type>Home &gt; {DEPARTMENTS[dep]}</g:product_type><g:brand>Shelf &amp; Co</g:brand></item>")
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
                    'xmlns:g="http://base.google.com/ns/1.0"><channel><title>Shop</title>'
                    + "".join(entries) + "</channel></rss>\n")


def write_ga4_export(path: Path) -> None:
    """20,000 GA4 events (view_item, add_to_cart, purchase) over 120 days: shopper s browses department s % 10 only,
    its popular products more (Zipf-like)."""
    rng = np.random.default_rng(19)
    per_dep = N_PRODUCTS // len(DEPARTMENTS)
    weights = 1.0 / np.arange(1, per_dep + 1)
    weights /= weights.sum()
    shoppers = rng.integers(0, N_SHOPPERS, N_EVENTS)
    lines = []
    for n, s in enumerate(shoppers):
        item = rng.choice(per_dep, p=weights) * len(DEPARTMENTS) + s % len(DEPARTMENTS)
        name = rng.choice(["view_item", "add_to_cart", "purchase"], p=[0.7, 0.2, 0.1])
        entry = {"item_id": f"SKU-{item}", "item_name": f"product {item}", "price": 5.5 + item % 40, "quantity": 1}
        at = START_US + n * 120 * DAY_US // N_EVENTS
        lines.append(json.dumps({"event_date": "20240501", "event_timestamp": str(at), "event_name": str(name),
                                 "user_pseudo_id": f"{1000 + s}.{s * 7}", "items": [entry]}))
    lines.insert(5, json.dumps({"event_timestamp": str(START_US), "event_name": "page_view",
                                "user_pseudo_id": "1.1"}))  # no product: skipped, as in a real export
    path.write_text("\n".join(lines) + "\n")


def deepshelf(*args, cwd: Path) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "deepshelf", *map(str, args)], capture_output=True, text=True,
                         cwd=cwd, timeout=300)
    assert res.returncode == 0, f"deepshelf {' '.join(map(str, args))}: {res.stderr[-2000:]}"
    return res


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """The README's walkthrough, command by command, in a fresh folder; yields the served base URL."""
    root = tmp_path_factory.mktemp("shop")
    write_feed(root / "products.xml")
    write_ga4_export(root / "ga4_events.ndjson")
    (root / "runs").mkdir()
    db = "sqlite:///runs/shop.db"
    out = deepshelf("import-feed", "products.xml", "--database", db, cwd=root).stdout
    assert "imported 1,000 products" in out
    out = deepshelf("import-events", "ga4_events.ndjson", "--database", db, cwd=root).stdout
    assert "stored 20,000 new events of 20,000" in out
    again = deepshelf("import-events", "ga4_events.ndjson", "--database", db, cwd=root).stdout
    assert "stored 0 new events of 20,000" in again  # importing the export twice stores nothing twice
    deepshelf("train", "--database", db, "--model", "ease", "--out", "runs/shop/ease", cwd=root)
    metrics = json.loads((root / "runs/shop/ease/metrics.json").read_text())
    assert metrics["items"] > 0.95 * N_PRODUCTS and metrics["protocol"] == "temporal"  # products with events

    port = free_port()
    log = root / "serve.log"
    env = {**os.environ, "DEEPSHELF_API_KEYS": PRIVATE, "DEEPSHELF_PUBLIC_KEYS": PUBLIC,
           "DEEPSHELF_TOKEN_SECRET": TOKEN_SECRET}
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "deepshelf", "serve", "--run", "runs/shop/ease",
                                 "--database", db, "--port", str(port)], cwd=root, env=env, stdout=sink,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, f"{base}/ready", log, timeout_s=90)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def widget_list(base: str, placement: str, user: str | None = None, items: tuple[str, ...] = (), k: int = 8) -> dict:
    """The list the widget asks for (web/widget.js `fetchList`), with the page's public key."""
    params = {"k": k, "details": "true", "placement": placement}
    headers = {"X-API-Key": PUBLIC}
    if placement == "product":
        response = httpx.get(f"{base}/v1/items/{items[0]}/similar", params=params, headers=headers, timeout=30)
    elif placement == "cart":
        response = httpx.post(f"{base}/v1/sessions/recommendations", params=params, headers=headers, timeout=30,
                              json={"item_ids": list(items)})
    else:  # the shop's backend signed the shopper in and gave the page their token (widget.js `data-token`)
        from deepshelf.client import shopper_token

        headers["X-Shopper-Token"] = shopper_token(TOKEN_SECRET, user, 600)
        response = httpx.get(f"{base}/v1/users/{user}/recommendations", params=params, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_widget_script_is_served(shop):
    response = httpx.get(f"{shop}/v1/widget.js", timeout=10)  # a <script src> sends no key
    assert response.status_code == 200 and "javascript" in response.headers["content-type"]
    # the calls the widget makes for each placement are the ones the tests below make with the public key
    for call in ("/recommendations", "/similar", "/v1/sessions/recommendations", "attachShadow"):
        assert call in response.text


def check_list(answer: dict, want_department: int, k: int) -> None:
    """A real list: k products of the feed with their titles and prices, mostly of the planted department."""
    items = answer["items"]
    assert len(items) == k and answer["recommendation_id"]
    for item in items:
        assert item["item_id"].startswith("SKU-") and item["title"] and item["price"] is not None
    departments = Counter(department(item["item_id"]) for item in items)
    assert departments[want_department] >= k - 2, departments  # at most the new-arrival slot and one more


@pytest.mark.parametrize("shopper", [3, 10, 27])
def test_home_placement_follows_the_shoppers_department(shop, shopper):
    user = f"{1000 + shopper}.{shopper * 7}"
    answer = widget_list(shop, "home", user=user)
    check_list(answer, shopper % len(DEPARTMENTS), 8)
    assert any(item["reason"] != "trending" for item in answer["items"])  # from their history, not a fallback


def test_product_and_cart_placements_stay_in_the_department(shop):
    check_list(widget_list(shop, "product", items=("SKU-42",)), 2, 8)
    check_list(widget_list(shop, "cart", items=("SKU-7", "SKU-17")), 7, 8)


def test_a_new_visitor_s_events_turn_the_list_to_their_department(shop):
    """What the widget does after a click: post a view event with the public key, ask again."""
    visitor = "widget-visitor-1"
    for item in ("SKU-5", "SKU-15", "SKU-25"):
        response = httpx.post(f"{shop}/v1/events", headers={"X-API-Key": PUBLIC}, timeout=30,
                              json={"events": [{"user_id": visitor, "item_id": item, "type": "view"}]})
        assert response.status_code == 200, response.text
    check_list(widget_list(shop, "home", user=visitor), 5, 8)
