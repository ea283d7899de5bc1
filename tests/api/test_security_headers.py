"""Security headers (issue 27, F8): `X-Content-Type-Options: nosniff` on every answer (an uploaded "image" that is
also HTML, errors, preflights), and a Content-Security-Policy with `frame-ancestors` on the pages."""

from __future__ import annotations

import base64

from fastapi.testclient import TestClient

from deepshelf.api.app import create_app
from tests.api.conftest import PUBLIC_KEY, auth, make_settings

# a GIF signature followed by HTML: a browser sniffing it would run the script
POLYGLOT = base64.b64encode(b"GIF89a<html><script>alert(1)</script></html>").decode()


def test_nosniff_on_every_answer(run_link, tmp_path):
    app = create_app(make_settings(run_link, f"sqlite:///{tmp_path / 's.db'}", cors_origins="https://shop.example"))
    with TestClient(app) as c:
        assert c.put("/v1/items/poly", json={"title": "x", "image_base64": POLYGLOT}, headers=auth()).status_code == 200
        answers = [c.get("/v1/items/poly/image", headers=auth()), c.get("/health"), c.get("/nowhere"),
                   c.get("/v1/users/u/events"), c.get("/v1/popular", params={"k": 0}, headers=auth()),
                   c.get("/v1/popular", headers={"X-API-Key": PUBLIC_KEY}),
                   c.options("/v1/events", headers={"Origin": "https://shop.example",
                                                    "Access-Control-Request-Method": "POST"})]
        assert [r.status_code for r in answers] == [200, 200, 404, 401, 422, 200, 200]
        for r in answers:
            assert r.headers.get("x-content-type-options") == "nosniff", (r.request.url, r.headers)
            assert "content-security-policy" not in r.headers  # the API's answers are not pages
        for page in ("/", "/admin"):
            r = c.get(page)
            csp = r.headers["content-security-policy"]
            assert r.status_code == 200 and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
            assert r.headers["x-content-type-options"] == "nosniff"
