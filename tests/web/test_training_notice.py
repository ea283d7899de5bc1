"""The storefront says what the demo is still training (apps/demo_training.py, `GET /demo/status`), and says
nothing on a server with nothing training."""

from __future__ import annotations

import threading

import pytest

from deepshelf.apps import demo
from deepshelf.apps.demo_training import TrainingStatus
from tests.conftest import free_port
from tests.web.conftest import API_KEY, PUBLIC_KEY


@pytest.fixture(scope="module")
def training_server(demo_build):
    """The small demo build served with a trainer that still has the ranker and SASRec to go."""
    import uvicorn

    paths, shoppers = demo_build
    status = TrainingStatus(pending=["ranker", "sasrec"], serving="itemknn")
    app = demo.make_app(paths, api_key=API_KEY, public_key=PUBLIC_KEY, shoppers=shoppers, training=status)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    demo.wait_for(f"{base}/health", timeout=90)
    yield base, status
    srv.should_exit = True
    thread.join(timeout=15)


def test_storefront_says_what_is_still_training(browser, training_server):
    base, status = training_server
    context = browser.new_context(base_url=base)
    page = context.new_page()
    try:
        page.goto("/")
        line = page.locator("#training-status")
        line.wait_for(state="visible", timeout=20_000)
        assert "Still training in the background: ranker, sasrec" in line.inner_text()
        assert "Serving itemknn" in line.inner_text()
        status.start("ranker")
        status.finish("ranker", "ranker")
        status.start("sasrec")
        status.finish("sasrec", "ranker")
        page.wait_for_function("document.getElementById('training-status').textContent.includes('Every model')",
                               timeout=20_000)
        assert "serving ranker" in line.inner_text()
    finally:
        context.close()


def test_storefront_without_training_shows_no_line(page):
    page.goto("/")
    page.wait_for_load_state("networkidle")  # /demo/status answered: nothing is training
    assert page.locator("#training-status").is_hidden()
