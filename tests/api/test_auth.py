"""Key scopes (issue 16): each route class against no key, a wrong key, a public key and a private key; reads
without keys configured; no server path or exception text in an answer; the demo page carries only its public key.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from deepshelf.api.app import create_app
from tests.api.conftest import KEY, PUBLIC_KEY, make_settings

PRIVATE_H, PUBLIC_H, WRONG_H = {"X-API-Key": KEY}, {"X-API-Key": PUBLIC_KEY}, {"X-API-Key": "wrong"}
NO_KEY = {"X-API-Key": ""}  # an empty header is no key

# (method, url, json body): one request per operation of each class
OPEN = [("get", "/health", None), ("get", "/openapi.json", None), ("get", "/", None), ("get", "/admin", None)]
PUBLIC_WRITES = [("post", "/v1/events", {"events": [{"user_id": "a", "item_id": "i1"}]})]
# a shopper's own list: a private key, or a public key with that shopper's token (test_shopper_tokens.py)
SHOPPER_READS = [("get", "/v1/users/u0_0/recommendations", None), ("get", "/v1/search?q=Product&user_id=u0_0", None)]
PUBLIC_READS = [
    ("post", "/v1/sessions/recommendations", {"item_ids": ["i1"]}),
    ("get", "/v1/items/i1/similar", None),
    ("get", "/v1/search?q=Product", None),
    ("get", "/v1/popular", None),
    ("get", "/v1/items/i1", None),
]
PRIVATE = [
    ("get", "/v1/users", None),
    ("get", "/v1/users/u0_0/events", None),
    ("delete", "/v1/users/nobody", None),
    ("get", "/v1/items", None),
    ("put", "/v1/items/z", {"title": "z"}),
    ("post", "/v1/items", {"items": [{"item_id": "z"}]}),
    ("get", "/v1/runs", None),
    ("get", "/v1/stats/events", None),
    ("get", "/v1/stats/latency", None),
    ("get", "/v1/analytics/recommendations", None),
    ("get", "/metrics", None),
    ("post", "/v1/admin/reload", None),
]


def call(c: TestClient, method: str, url: str, body, headers: dict[str, str]):
    return c.request(method.upper(), url, json=body, headers=headers)


@pytest.fixture
def app_client(run_link, tmp_path):
    with TestClient(create_app(make_settings(run_link, f"sqlite:///{tmp_path / 'a.db'}"))) as c:
        yield c


def test_each_scope_on_each_route_class(app_client):
    for method, url, body in OPEN:
        for headers in (NO_KEY, WRONG_H, PUBLIC_H):
            assert call(app_client, method, url, body, headers).status_code == 200, url
    for method, url, body in PUBLIC_WRITES + PUBLIC_READS:
        for headers in (NO_KEY, WRONG_H):
            r = call(app_client, method, url, body, headers)
            assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "X-API-Key", (url, r.text)
        for headers in (PUBLIC_H, PRIVATE_H):
            assert call(app_client, method, url, body, headers).status_code == 200, (url, headers)
    for method, url, body in SHOPPER_READS:
        for headers in (NO_KEY, WRONG_H):
            assert call(app_client, method, url, body, headers).status_code == 401, url
        r = call(app_client, method, url, body, PUBLIC_H)
        assert r.status_code == 403 and "shopper token" in r.json()["detail"], (url, r.text)
        assert call(app_client, method, url, body, PRIVATE_H).status_code == 200, url
    for method, url, body in PRIVATE:
        for headers in (NO_KEY, WRONG_H):
            assert call(app_client, method, url, body, headers).status_code == 401, url
        r = call(app_client, method, url, body, PUBLIC_H)
        assert r.status_code == 403 and "private key" in r.json()["detail"], url
        assert call(app_client, method, url, body, PRIVATE_H).status_code == 200, (url, r.text)


def test_product_pictures_need_no_key(app_client):
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    assert app_client.put("/v1/items/pic", json={"title": "p", "image_base64": png}, headers=PRIVATE_H).status_code \
        == 200
    r = app_client.get("/v1/items/pic/image", headers=NO_KEY)  # an <img> sends no header
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"


def test_shoppers_history_never_readable_without_a_private_key(app_client):
    assert app_client.post("/v1/events", json={"events": [{"user_id": "secret-shopper", "item_id": "i3"}]},
                           headers=PUBLIC_H).status_code == 200
    for headers in (NO_KEY, WRONG_H, PUBLIC_H):
        for url in ("/v1/users/secret-shopper/events", "/v1/users?limit=100"):
            r = app_client.get(url, headers=headers)
            assert r.status_code in (401, 403) and "secret-shopper" not in r.text
    assert app_client.get("/v1/users/secret-shopper/events", headers=PRIVATE_H).json()["events"][0]["item_id"] == "i3"


def test_reads_open_only_when_the_operator_says_so(run_link, tmp_path):
    settings = make_settings(run_link, f"sqlite:///{tmp_path / 'o.db'}", require_key_for_reads=False)
    with TestClient(create_app(settings)) as c:
        for method, url, body in PUBLIC_READS:
            assert call(c, method, url, body, NO_KEY).status_code == 200, url
        for method, url, body in SHOPPER_READS:  # open reads open nobody's history
            assert call(c, method, url, body, NO_KEY).status_code == 403, url
        for method, url, body in PUBLIC_WRITES:
            assert call(c, method, url, body, NO_KEY).status_code == 401, url
        for method, url, body in PRIVATE:
            assert call(c, method, url, body, NO_KEY).status_code == 401, url
        op = c.get("/openapi.json").json()["paths"]["/v1/popular"]["get"]
        assert "security" not in op and "401" not in op["responses"]  # the document says so too


def test_no_keys_configured_serves_nothing_but_probes_and_pages(run_link, tmp_path):
    settings = make_settings(run_link, f"sqlite:///{tmp_path / 'n.db'}", api_keys="", public_keys="")
    with TestClient(create_app(settings)) as c:
        for method, url, body in PUBLIC_WRITES + PUBLIC_READS + SHOPPER_READS + PRIVATE:
            r = call(c, method, url, body, PRIVATE_H)
            assert r.status_code == 401 and "DEEPSHELF_API_KEYS" in r.json()["detail"], url
        for method, url, body in OPEN:
            assert call(c, method, url, body, NO_KEY).status_code == 200, url


def test_a_key_in_both_scopes_is_refused():
    from pydantic import ValidationError

    from deepshelf.engine.settings import Settings

    with pytest.raises(ValidationError, match="both"):
        Settings(api_keys="a,b", public_keys="b")


def test_no_server_path_or_exception_text_reaches_a_client(app_client, runs_dir, tmp_path):
    missing = tmp_path / "no-such-run"
    r = app_client.post("/v1/admin/reload", json={"run": str(missing)}, headers=PRIVATE_H)
    assert r.status_code == 409 and "no-such-run" in r.json()["detail"]
    runs = app_client.get("/v1/runs", headers=PRIVATE_H)
    assert runs.status_code == 200 and runs.json()["last_reload_error"]
    ok = app_client.post("/v1/admin/reload", headers=PRIVATE_H)
    for text in (r.text, runs.text, ok.text):
        for secret in (str(tmp_path), str(runs_dir), "/tmp/", "Error:", "Traceback"):
            assert secret not in text, (secret, text[:300])
    body = runs.json()
    assert body["serving"] and body["current"]["path"] == body["serving"]
    assert all(run["path"] == run["name"] for run in body["runs"])


def test_demo_page_carries_only_the_public_key(runs_dir, tmp_path):
    from deepshelf.apps import demo

    paths = demo.DemoPaths(tmp_path / "demo")
    paths.runs_dir.mkdir()
    paths.current.symlink_to(runs_dir / "knn")
    make_settings(paths.current, paths.database)  # seeds the demo store's catalogue
    app = demo.make_app(paths, shoppers=["u0_0", "u1_0"])
    with TestClient(app) as c:
        page = c.get("/").text
        assert f'<meta name="deepshelf-public-key" content="{demo.DEMO_PUBLIC_KEY}">' in page
        assert 'content="u0_0,u1_0"' in page
        scripts = "".join(c.get(f"/static/{name}").text for name in ("api.js", "store.js", "admin.js"))
        admin = c.get("/admin").text
        for text in (page, scripts, admin):
            assert demo.DEMO_API_KEY not in text
        # the page's key works for what the page does, and for nothing private
        h = {"X-API-Key": demo.DEMO_PUBLIC_KEY}
        assert c.get("/v1/popular", headers=h).status_code == 200
        assert c.get("/v1/users", headers=h).status_code == 403
        assert c.get("/v1/users", headers={"X-API-Key": demo.DEMO_API_KEY}).status_code == 200
