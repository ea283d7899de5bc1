"""The demo shows its own loop (issue 28, item 4): a click on a recommendation card, add to cart and a purchase in
the storefront reach the dashboard as a click and a conversion with its value.

Before, the storefront sent no `recommendation_id` with its events and no `value` with its purchases, so after the
same three steps the dashboard said CTR 0.00% and 0 conversions."""

from __future__ import annotations

import re
import time

from .conftest import API_KEY, api, shot
from .test_storefront import cards, wait_page


def _analytics_total(server: str) -> dict:
    return api(server, "/v1/analytics/recommendations")["total"]


def test_click_cart_purchase_reach_the_dashboard_as_a_conversion_with_its_value(page, server):
    page.goto("/")
    wait_page(page, "home")
    page.wait_for_function("document.getElementById('recs')?.dataset.recommendationId")
    list_id = page.get_attribute("#recs", "data-recommendation-id")
    item = cards(page, "recs")[0]
    assert page.get_attribute(f"#recs li.card[data-item-id='{item}']", "data-recommendation-id") == list_id
    before = _analytics_total(server)

    page.click(f"#recs li.card[data-item-id='{item}'] a")  # the shopper clicks a recommendation
    wait_page(page, "product")
    page.wait_for_selector("#last-event:has-text('Sent view')")
    price = api(server, f"/v1/items/{item}")["price"]
    assert price and price > 0
    page.click("#add-to-cart")
    page.wait_for_selector("#last-event:has-text('Sent cart')")
    page.click("#buy-now")
    page.wait_for_selector("#last-event:has-text('Sent purchase')")

    # the service attributes them: the list clicked, carted and converted, the purchase's value its revenue
    for _ in range(100):  # the impression writer stores the lists shown every 0.5 s
        after = _analytics_total(server)
        if after["conversions"] > before["conversions"]:
            break
        time.sleep(0.1)
    assert after["clicks"] >= before["clicks"] + 1 and after["carts"] >= before["carts"] + 1
    assert after["conversions"] >= before["conversions"] + 1
    assert after["revenue"] >= before["revenue"] + price - 1e-9

    # ... and the dashboard shows it
    page.goto("/admin")
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#admin-key", API_KEY)
    page.press("#admin-key", "Enter")
    page.wait_for_selector("#analytics[data-loaded] table")
    text = page.locator("#analytics .analytics-body > p").first.inner_text()
    m = re.search(r"CTR ([\d.]+)%.*?([\d,]+) converted, revenue ([\d.]+)", text, re.S)
    assert m, text
    assert float(m[1]) > 0 and int(m[2].replace(",", "")) >= 1 and float(m[3]) >= price - 0.005, text
    clicks = [int(t.replace(",", "")) for t in page.locator("#analytics tbody td.clicks").all_inner_texts()]
    conversions = [int(t.replace(",", "")) for t in page.locator("#analytics tbody td.conversions").all_inner_texts()]
    assert sum(clicks) >= 1 and sum(conversions) >= 1
    shot(page, "dashboard-after-a-recommended-purchase")


def test_a_product_opened_from_its_url_sends_no_list_id(page, server):
    """Only a click on a shown list counts as that list's click: a product opened from the URL sends none."""
    page.goto("/")
    wait_page(page, "home")
    item = cards(page, "trending")[3]
    before = _analytics_total(server)["clicks"]
    page.goto(f"/#/item/{item}")
    wait_page(page, "product")
    page.wait_for_selector("#last-event:has-text('Sent view')")
    time.sleep(0.6)
    assert _analytics_total(server)["clicks"] == before
