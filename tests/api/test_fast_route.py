"""The thin route for `GET /v1/users/{user_id}/recommendations` (api/fast_route.py) answers every request exactly
as the FastAPI route does (status, body but the fresh recommendation_id, the auth header), takes the valid ones
without FastAPI's dependency solving, and leaves the rest (ids and tokens FastAPI refuses, HEAD) to that route."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from deepshelf import tokens
from deepshelf.api import fast_route
from deepshelf.api.app import create_app
from tests.api.conftest import KEY, PUBLIC_KEY, make_settings

SECRET = "fast-route-secret"
SHOPPER = "u1_0"  # a shopper of the shop's history (tests/api/conftest.py)


@pytest.fixture
def app(run_link, tmp_path):
    app = create_app(make_settings(run_link, f"sqlite:///{tmp_path / 'store.db'}", token_secret=SECRET))
    with TestClient(app) as c:
        c.post("/v1/events", headers={"X-API-Key": KEY},
               json={"events": [{"user_id": SHOPPER, "item_id": f"i{25 + j}", "type": "view"} for j in range(4)]})
        yield app, c


def answer(c: TestClient, path: str, headers: dict, method: str = "GET"):
    r = c.request(method, path, headers=headers)
    body = r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else r.content
    if isinstance(body, dict):
        body.pop("recommendation_id", None)
    return r.status_code, body, r.headers.get("www-authenticate"), r.headers.get("retry-after")


def test_same_answers_as_the_fastapi_route(app, monkeypatch):
    app, c = app
    good = tokens.mint(SECRET, SHOPPER, ttl=3600)
    other = tokens.mint(SECRET, "u2_0", ttl=3600)
    base = f"/v1/users/{SHOPPER}/recommendations"
    cases = [
        (base + "?k=10&details=true", {"X-API-Key": PUBLIC_KEY, "X-Shopper-Token": good}),
        (base + "?k=5", {"X-API-Key": KEY}),
        (base + "?k=3&category=cat1&exclude=i26,i27&boost=cat1:2&max_per_category=2", {"X-API-Key": KEY}),
        (base, {"X-API-Key": PUBLIC_KEY}),  # no token: 403
        (base, {"X-API-Key": PUBLIC_KEY, "X-Shopper-Token": other}),  # another shopper's: 403
        (base, {"X-API-Key": PUBLIC_KEY, "X-Shopper-Token": good[:-3] + "abc"}),  # tampered: 401
        (base, {"X-API-Key": PUBLIC_KEY, "X-Shopper-Token": ""}),
        (base, {"X-API-Key": PUBLIC_KEY, "X-Shopper-Token": "x" * 3000}),  # over its length: FastAPI's 422
        (base, {}),  # no key: 401
        (base, {"X-API-Key": "wrong"}),
        (base + "?k=0", {"X-API-Key": KEY}),  # 422 from the list query
        (base + "?k=10000", {"X-API-Key": KEY}),
        (base + "?category=nope", {"X-API-Key": KEY}),  # unknown category: 422 naming the catalogue's
        (base + "?min_price=5&max_price=1", {"X-API-Key": KEY}),
        (base + "?k=abc", {}),  # 401 before the query's 422, as FastAPI solves the key first
        ("/v1/users/%20%20/recommendations", {"X-API-Key": KEY}),  # a blank id: FastAPI's 422
        ("/v1/users/" + "u" * 300 + "/recommendations", {"X-API-Key": KEY}),
        ("/v1/users/never-seen/recommendations?k=4", {"X-API-Key": KEY}),  # fallback list
        ("/v1/users/%20u1_0%20/recommendations?k=4", {"X-API-Key": KEY}),  # stripped like FastAPI's Id
    ]
    calls = []
    import fastapi.routing

    real = fastapi.routing.solve_dependencies

    async def counted(*args, **kwargs):
        calls.append(1)
        return await real(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counted)
    thin = app.router.routes[0]
    assert isinstance(thin, fast_route.UserListRoute)
    for path, headers in cases:
        calls.clear()
        fast = answer(c, path, headers)
        took_fast = not calls
        app.router.routes.remove(thin)
        try:
            slow = answer(c, path, headers)
        finally:
            app.router.routes.insert(0, thin)
        assert fast == slow, (path, headers, fast, slow)
        if path.endswith("details=true"):
            assert fast[0] == 200 and fast[1]["items"] and took_fast  # the storefront's request: the thin route
        if "x" * 3000 in headers.get("X-Shopper-Token", "") or "%20%20" in path:
            assert not took_fast and fast[0] == 422
    assert answer(c, f"/v1/users/{SHOPPER}/recommendations", {"X-API-Key": KEY}, "HEAD")[0] == 405
    assert answer(c, f"/v1/users/{SHOPPER}/recommendations", {"X-API-Key": KEY}, "POST")[0] == 405


def test_counted_under_the_documented_route(app):
    app, c = app
    c.get(f"/v1/users/{SHOPPER}/recommendations?k=3", headers={"X-API-Key": KEY})
    rows = c.get("/v1/stats/latency", headers={"X-API-Key": KEY}).json()["routes"]
    assert any(r["route"] == fast_route.PATH and r["method"] == "GET" for r in rows)
    assert fast_route.PATH in app.openapi()["paths"]
