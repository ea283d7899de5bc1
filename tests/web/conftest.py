"""Browser fixtures: a real server on a free loopback port over a small demo build, and Debian's chromium.

The demo build comes from the same functions as `deepshelf demo` (two quick models on the bundled Online Retail
purchases, store seeded with its events and catalogue). Screenshots go to `test-artifacts/web/` (git-ignored).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
API_KEY = "web-test-key"  # private: the dashboard asks for it
PUBLIC_KEY = "web-test-public-key"  # the storefront page is given it

@pytest.fixture(scope="session")
def demo_build(tmp_path_factory):
    """A small demo: popularity + item-kNN trained on online-retail, item-kNN served, store seeded."""
    from deepshelf.apps import demo

    runs_dir = tmp_path_factory.mktemp("web-demo") / "demo"
    ds = demo.demo_dataset("online-retail")
    runs = demo.train_models("online-retail", runs_dir, {"popularity": {}, "itemknn": {}})
    serving = demo.choose_serving(runs)
    demo.link_current(runs_dir, demo.serving_folder(runs_dir, serving, demo.content_folder(runs)))
    paths = demo.DemoPaths(runs_dir)
    demo.seed_store(paths.database, ds)
    return paths, demo.demo_shoppers(ds)


@pytest.fixture(scope="session")
def server(demo_build):
    """Base URL of a uvicorn server (in a thread of this process) serving the demo build."""
    import uvicorn

    from deepshelf.apps import demo

    paths, shoppers = demo_build
    port = free_port()
    app = demo.make_app(paths, api_key=API_KEY, public_key=PUBLIC_KEY, shoppers=shoppers)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, name="web-test-server", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    demo.wait_for(f"{base}/health", timeout=90)
    yield base
    srv.should_exit = True
    thread.join(timeout=15)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.web_failed = report.failed


@pytest.fixture(autouse=True)
def csp_safe_waits(monkeypatch):
    """Every page's `wait_for_function` is `wait_for_truthy` (the pages' CSP refuses Playwright's own)."""
    try:
        from playwright.sync_api import Page
    except ImportError:  # no browser tests here: they skip
        return
    monkeypatch.setattr(Page, "wait_for_function", wait_for_truthy)


@pytest.fixture
def page(browser, server, request):  # browser first: without chromium the server is never built
    """A fresh browser context (empty storage), failing on any page error or anything the page's CSP blocks."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server)
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    # the pages' Content-Security-Policy (api/security_headers.py): anything it blocks is reported on the console
    pg.on("console", lambda msg: errors.append(msg.text)
          if msg.type == "error" and "Content Security Policy" in msg.text else None)
    yield pg
    if getattr(request.node, "web_failed", False):  # what the page looked like when the test failed
        try:
            shot(pg, f"FAILED-{request.node.name}")
        except Exception:  # a screenshot must not hide the test's own result
            pass
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def wait_for_truthy(pg, expression: str, arg=None, timeout: float | None = None, **_):
    """`Page.wait_for_function` for pages with a Content-Security-Policy: Playwright's own compiles the predicate
    with `new Function` inside the page, which the pages' policy (no 'unsafe-eval') refuses; `evaluate` goes
    through the DevTools protocol, which the policy does not govern. Polls until the expression is truthy."""
    from playwright.sync_api import Error

    deadline = time.monotonic() + (timeout if timeout is not None else 20_000) / 1000
    while True:
        try:
            value = pg.evaluate(expression, arg)
        except Error as exc:  # a navigation replaced the document between two polls
            if "context was destroyed" not in str(exc) and "navigat" not in str(exc):
                raise
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {expression[:200]}")
        time.sleep(0.05)


def shot(page, name: str) -> Path:
    """Save a full-page screenshot as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def api(server: str, path: str):
    """What the shop's own server reads (with the private key)."""
    response = httpx.get(server + path, headers={"X-API-Key": API_KEY}, timeout=10)
    response.raise_for_status()
    return response.json()

