"""Security headers on every answer, as a pure ASGI middleware (no Starlette BaseHTTPMiddleware: that wraps each
request in a task and a stream; this only appends precomputed header pairs to the `http.response.start` message).

- `X-Content-Type-Options: nosniff` on every answer, so a browser never takes an uploaded "image" (or any JSON) for
  HTML or script whatever its bytes look like;
- on the pages (`/`, `/admin`), a Content-Security-Policy: their scripts and styles come from this server only
  (`/static`), `frame-ancestors 'none'` so no other site can frame the dashboard or the storefront (clickjacking).
  Inline `style="..."` attributes stay allowed (the pages and their scripts set a few); no inline script runs.
  Product images may come from the shop's own hosts (`image_url`), and the dashboard shows the plots it fetches
  with the private key as blob: URLs.
"""

from __future__ import annotations

NOSNIFF = (b"x-content-type-options", b"nosniff")
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob: https: http:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")
_PAGE_HEADERS = (NOSNIFF, (b"content-security-policy", PAGE_CSP.encode()), (b"x-frame-options", b"DENY"))
_API_HEADERS = (NOSNIFF,)
PAGES = frozenset({"/", "/admin"})


class SecurityHeaders:
    """Adds `_API_HEADERS` to every HTTP answer and `_PAGE_HEADERS` to the pages'. Registered outermost but CORS
    (app.py), so shed (503), refused (401/413) and error answers carry them too."""

    def __init__(self, app, pages: frozenset[str] = PAGES):
        self.app = app
        self.pages = pages

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = _PAGE_HEADERS if scope["path"] in self.pages else _API_HEADERS

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
