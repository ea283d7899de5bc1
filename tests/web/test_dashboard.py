"""The dashboard's friction (issue 28, item 11) in Debian's chromium: an experiments panel with the variants, their
numbers and the service's verdict; chart labels inside their charts; the analytics table whole at 1366 px; the
latency table without CORS preflights, HEAD probes and unmatched requests."""

from __future__ import annotations

import time

import httpx

from .conftest import API_KEY, PUBLIC_KEY, api, shot

PRIVATE, PUBLIC = {"X-API-Key": API_KEY}, {"X-API-Key": PUBLIC_KEY}


def open_dashboard(page) -> None:
    page.goto("/admin")
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#admin-key", API_KEY)
    page.press("#admin-key", "Enter")


def test_experiments_panel_shows_variants_numbers_and_verdict(page, server, demo_build):
    paths, _ = demo_build
    body = {"placement": "panel-test", "variants": [
        {"name": "popular", "run": str(paths.runs_dir / "popularity"), "share": 0.5},
        {"name": "knn", "run": str(paths.runs_dir / "itemknn"), "share": 0.5}]}
    r = httpx.put(f"{server}/v1/experiments/panel-ab", json=body, headers=PRIVATE, timeout=60)
    assert r.status_code == 200, r.text
    try:
        for i in range(12):  # visits on the experiment's placement, split between its variants
            httpx.get(f"{server}/v1/popular?k=5&placement=panel-test&session_id=visit-{i}", headers=PUBLIC, timeout=10)
        for _ in range(100):  # the impression writer stores the lists every 0.5 s
            listed = {e["name"]: e for e in api(server, "/v1/experiments")["experiments"]}
            if sum(v["impressions"] for v in listed["panel-ab"]["variants"]) == 12:
                break
            time.sleep(0.1)
        answer = listed["panel-ab"]
        open_dashboard(page)
        panel = page.locator("#experiments article[data-name=panel-ab]")
        panel.wait_for()
        rows = panel.locator("tbody tr")
        assert rows.count() == 2
        for variant in answer["variants"]:  # what the panel shows is what the API answers
            row = panel.locator(f"tbody tr[data-variant={variant['name']}]")
            assert row.locator("td.impressions").inner_text() == f"{variant['impressions']:,}"
            assert row.locator("td.clicks").inner_text() == f"{variant['clicks']:,}"
        verdict = panel.locator(".verdict").inner_text()
        assert verdict.startswith("No winner yet" if answer["verdict"]["winner"] is None else "Winner: ")
        assert answer["verdict"]["method"] in verdict and "p = " in verdict
        assert "placement panel-test" in panel.locator("h3").inner_text()
        shot(page, "dashboard-experiments")
    finally:
        httpx.delete(f"{server}/v1/experiments/panel-ab", headers=PRIVATE, timeout=10)


def test_latency_table_lists_only_the_api_a_shop_calls(page, server):
    httpx.options(f"{server}/v1/popular", headers={"Origin": "http://shop.example",
                                                   "Access-Control-Request-Method": "GET"}, timeout=10)
    httpx.head(f"{server}/v1/popular", headers=PUBLIC, timeout=10)
    httpx.get(f"{server}/v1/no-such-route", headers=PUBLIC, timeout=10)
    httpx.get(f"{server}/v1/popular?k=3", headers=PUBLIC, timeout=10)
    timed = {f"{r['method']} {r['route']}" for r in api(server, "/v1/stats/latency")["routes"] if r["count"]}
    noise = {t for t in timed if t.startswith(("OPTIONS ", "HEAD ")) or t.endswith(" unmatched")}
    assert noise, f"the service timed them (so the table has something to leave out): {sorted(timed)}"
    open_dashboard(page)
    page.wait_for_selector("#latency-table tbody tr")
    listed = {t.strip() for t in page.locator("#latency-table tbody tr td:first-child").all_inner_texts()}
    assert "GET /v1/popular" in listed
    assert not listed & noise, listed & noise
    labels = page.eval_on_selector_all("#latency-figure svg text", "els => els.map(e => e.textContent)")
    assert not any(label.startswith(("OPTIONS", "HEAD")) or "unmatched" in label for label in labels), labels


OUTSIDE = """svg => { const box = svg.getBoundingClientRect(); return [...svg.querySelectorAll('text')].filter(t => {
    const b = t.getBoundingClientRect();  // on screen, rotations included
    return b.width > 0 && (b.left < box.left - 0.5 || b.right > box.right + 0.5 || b.top < box.top - 0.5
                           || b.bottom > box.bottom + 0.5); }).map(t => t.textContent); }"""


def test_at_1366_px_charts_keep_their_labels_and_the_analytics_table_its_last_column(browser, server):
    for path in ("/v1/users/dash-1366/recommendations?k=5", "/v1/popular?k=5&placement=a-rather-long-placement",
                 "/v1/items/nothing/similar", "/v1/sessions/recommendations"):
        if path.startswith("/v1/sessions"):
            httpx.post(server + path, json={"item_ids": []}, headers=PUBLIC, timeout=10)
        else:
            httpx.get(server + path, headers=PRIVATE, timeout=10)
    context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=server)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        open_dashboard(page)
        page.wait_for_selector("#latency-figure svg")
        page.wait_for_selector("#analytics table tbody tr")
        page.wait_for_function("document.querySelectorAll('#per-model svg').length === 1")
        clipped = {}
        for svg in page.locator("main svg").all():
            outside = svg.evaluate(OUTSIDE)
            if outside:
                clipped[svg.get_attribute("aria-label")] = outside
        assert not clipped, f"labels running off their chart: {clipped}"
        wrap = page.evaluate("(w => [w.scrollWidth, w.clientWidth])(document.querySelector('#analytics .table-wrap'))")
        assert wrap[0] <= wrap[1], f"the analytics table scrolls sideways at 1366 px: {wrap}"
        shot(page, "dashboard-1366")
    finally:
        context.close()
