"""Nothing blocks the event loop: no `async def` route, dependency, middleware or handler calls the store or parses
a request body synchronously (a slow database or a big feed would stall every request, `/health` included).

The app's store is wrapped in a double whose every method call on the event loop's thread is recorded (and
raises), and the body parsers the routes call are wrapped the same way; then every route is exercised, the list
routes with `category=` (known, unknown, and new to this server), and no call may have happened on the loop."""

from __future__ import annotations

import asyncio
import base64
import functools
import importlib
import inspect
import pkgutil
import threading
from contextlib import closing

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

import deepshelf.api
from deepshelf.api import app as app_module
from deepshelf.storage import Item, open_store

from .conftest import auth, make_settings

FEED = """<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel>
<item><g:id>FEED-1</g:id><title>Red Mug</title><g:price>12.50 EUR</g:price><g:product_type>Mugs</g:product_type></item>
<item><g:id>FEED-2</g:id><title>Blue Mug</title><g:price>cheap</g:price></item>
</channel></rss>"""
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


def on_event_loop() -> bool:
    """Whether the calling thread is running an event loop (the thread pool's workers and the service's own
    threads are not)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class LoopCalls(list):
    """What was called on the event loop's thread: `name (thread)` per call."""

    def check(self, name: str) -> None:
        if on_event_loop():
            self.append(f"{name} on {threading.current_thread().name}")
            raise AssertionError(f"{name} called on the event loop")


class LoopGuardedStore:
    """The real store, except that calling any of its methods on the event loop is recorded and raises; plain
    attributes (`kind`) read through."""

    def __init__(self, store, calls: LoopCalls):
        self._store, self._calls = store, calls

    def __getattr__(self, name):
        value = getattr(self._store, name)
        if not callable(value):
            return value
        return _guarded(value, f"store.{name}", self._calls)


def guard_parsers(monkeypatch, calls: LoopCalls) -> list[str]:
    """Wrap every body parser the HTTP layer calls: each function of `deepshelf.data` (apart from the typed
    fields, which pydantic runs while FastAPI validates) imported into a module of `deepshelf.api`."""
    guarded = []
    for info in pkgutil.walk_packages(deepshelf.api.__path__, "deepshelf.api."):
        module = importlib.import_module(info.name)
        for name, value in list(vars(module).items()):
            origin = getattr(value, "__module__", "") or ""
            if (inspect.isfunction(value) and origin.startswith("deepshelf.data.")
                    and origin != "deepshelf.data.fields"):
                monkeypatch.setattr(module, name, _guarded(value, f"{origin}.{name}", calls))
                guarded.append(f"{origin}.{name}")
    return guarded


def _guarded(function, name: str, calls: LoopCalls):
    @functools.wraps(function)
    def guarded(*args, **kwargs):
        calls.check(name)
        return function(*args, **kwargs)

    return guarded


@pytest.fixture
def guarded(run_link, database, monkeypatch):
    """A client of an app whose store and body parsers record any call on the event loop, and that record."""
    calls = LoopCalls()
    real_open = app_module.open_store
    monkeypatch.setattr(app_module, "open_store", lambda *a, **kw: LoopGuardedStore(real_open(*a, **kw), calls))
    parsers = guard_parsers(monkeypatch, calls)
    assert "deepshelf.data.feeds.parse_feed" in parsers  # the guard covers the feed import
    # a catalogue refresh is due on every request (as on a server whose last one is older than catalog_refresh_s),
    # so a store read on the loop shows on the first request that makes one, not only when the timing lines up
    app = app_module.create_app(make_settings(run_link, database, catalog_refresh_s=1e-6))
    # a call on the loop raises, so the answer is a 500: the test names the call instead
    with TestClient(app, headers=auth(), raise_server_exceptions=False) as client:
        assert isinstance(app.state.service.store, LoopGuardedStore)
        yield client, calls, database


def _another_server_adds(database: str, item: Item) -> None:
    """An upsert this server's catalogue view has not seen (as another server's would be)."""
    with closing(open_store(database)) as store:
        store.upsert_items([item])


def test_no_route_calls_the_store_or_parses_a_body_on_the_event_loop(guarded, runs_dir):
    c, calls, database = guarded
    done: set[tuple[str, str]] = set()

    def call(method: str, template: str, url: str, expect: int = 200, **kwargs):
        res = c.request(method, url, **kwargs)
        done.add((method, template))
        if calls:
            pytest.fail(f"{method} {url} called on the event loop: " + "; ".join(calls))
        assert res.status_code == expect, (method, url, res.status_code, res.text)
        return res

    # the list routes, each with a category filter (the async `list_query` dependency checks it)
    lists = [("GET", "/v1/users/{user_id}/recommendations", "/v1/users/u0_1/recommendations", {}),
             ("POST", "/v1/sessions/recommendations", "/v1/sessions/recommendations", {"json": {"item_ids": ["i1"]}}),
             ("GET", "/v1/items/{item_id}/similar", "/v1/items/i1/similar", {}),
             ("GET", "/v1/search", "/v1/search?q=product", {}),
             ("GET", "/v1/popular", "/v1/popular", {})]
    for method, template, url, kwargs in lists:
        sep = "&" if "?" in url else "?"
        call(method, template, f"{url}{sep}category=cat1&details=true", **kwargs)
        unknown = call(method, template, f"{url}{sep}category=nosuch", 422, **kwargs)
        assert unknown.json()["errors"][0]["loc"] == ["query", "category"]
        assert "unknown category 'nosuch'" in unknown.json()["errors"][0]["msg"]
        assert "cat1" in unknown.json()["errors"][0]["msg"]  # the catalogue's categories are named
        call(method, template, url, **kwargs)  # and without one
    rules = call("POST", "/v1/sessions/recommendations", "/v1/sessions/recommendations", 422,
                 json={"item_ids": ["i1"], "rules": {"categories": ["nosuch"]}})
    assert rules.json()["errors"][0]["loc"] == ["body", "rules", "categories"]

    # a category only another server has stored: this server's view learns it from the store (the unknown
    # category reads the store, off the loop) and answers it, as before
    _another_server_adds(database, Item(item_id="elsewhere-1", title="Kettle", category="kettles", price=30.0))
    for _ in range(100):
        res = c.get("/v1/popular?category=kettles")
        if res.status_code == 200:
            break
        assert res.status_code == 422, res.text
    assert res.status_code == 200, res.text
    assert {it["item_id"] for it in res.json()["items"]} <= {"elsewhere-1"}  # the filter holds

    # the catalogue: the feed import (parsed and stored off the loop), upserts, reads, the image
    feed = call("POST", "/v1/items:import", "/v1/items:import", content=FEED,
                headers={"Content-Type": "application/xml"})
    assert feed.json()["accepted"] == 1 and feed.json()["errors"][0]["item_id"] == "FEED-2"
    bad_feed = call("POST", "/v1/items:import", "/v1/items:import", 400, content="<rss><channel><item>",
                    headers={"Content-Type": "application/xml"})
    assert "not a well-formed XML feed" in bad_feed.json()["detail"]
    call("PUT", "/v1/items/{item_id}", "/v1/items/new-1",
         json={"title": "Teapot", "category": "teapots", "price": 5, "image_base64": PNG})
    call("POST", "/v1/items", "/v1/items", json={"items": [{"item_id": "new-2", "category": "teapots"}]})
    assert call("GET", "/v1/popular", "/v1/popular?category=teapots&category=Mugs").json()["items"]
    call("GET", "/v1/items", "/v1/items?category=teapots")
    call("GET", "/v1/items/{item_id}", "/v1/items/FEED-1")
    call("GET", "/v1/items/{item_id}/image", "/v1/items/new-1/image")

    # events, GA4, shoppers
    call("POST", "/v1/events", "/v1/events",
         json={"events": [{"user_id": "loop-u", "item_id": "i1", "type": "purchase"},
                          {"user_id": "loop-u", "item_id": "never-seen"}]})
    call("POST", "/v1/events/ga4", "/v1/events/ga4", json={"client_id": "loop-c", "events": [
        {"name": "view_item", "params": {"items": [{"item_id": "i2"}]}}]})
    call("GET", "/v1/users/{user_id}/events", "/v1/users/loop-u/events")
    call("GET", "/v1/users", "/v1/users")
    call("DELETE", "/v1/users/{user_id}", "/v1/users/loop-c")

    # experiments, analytics, admin, system
    experiment = {"placement": "cart", "variants": [{"name": "a", "run": str(runs_dir / "knn"), "share": 0.5},
                                                    {"name": "b", "run": str(runs_dir / "pop"), "share": 0.5}]}
    call("PUT", "/v1/experiments/{name}", "/v1/experiments/loop", json=experiment)
    call("GET", "/v1/users/{user_id}/recommendations", "/v1/users/loop-u/recommendations?placement=cart&category=cat0")
    call("GET", "/v1/experiments/{name}", "/v1/experiments/loop")
    call("DELETE", "/v1/experiments/{name}", "/v1/experiments/loop")
    call("GET", "/v1/analytics/recommendations", "/v1/analytics/recommendations")
    call("GET", "/v1/stats/events", "/v1/stats/events")
    call("GET", "/v1/stats/latency", "/v1/stats/latency")
    call("GET", "/v1/runs", "/v1/runs")
    call("GET", "/v1/runs/{name}/plots/{plot}", "/v1/runs/current/plots/none.png", 404)
    call("POST", "/v1/admin/reload", "/v1/admin/reload")
    call("GET", "/health", "/health")
    call("GET", "/ready", "/ready")
    call("GET", "/metrics", "/metrics")
    for template in ("/", "/admin", "/v1/widget.js"):
        res = c.get(template)
        done.add(("GET", template))
        assert res.status_code in (200, 404), (template, res.status_code)

    assert calls == [], "called on the event loop:\n" + "\n".join(calls)
    # every route of the app was tried (a new one joins this list)
    app = c.app
    routes = {(m, r.path) for r in app.routes if isinstance(r, APIRoute) for m in r.methods}
    assert routes - done == set()
