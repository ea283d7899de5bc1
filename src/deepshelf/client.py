"""`Client(url, key)`: a typed Python client for deepshelf's HTTP API, over httpx.

A top-level module that imports nothing from the rest of deepshelf: a shop's backend installs deepshelf (or copies
this file) and calls the service without the training stack.

    from deepshelf.client import Client
    with Client("http://localhost:8000", "PRIVATE_KEY") as shop:
        shop.send_events([{"user_id": "12680", "item_id": "22423", "type": "purchase"}])
        for rec in shop.recommendations("12680", k=5).items:
            print(rec.item_id, rec.score, rec.reason)

A non-2xx answer raises `ApiError` with the status and the server's `detail` (which names the bad field).

`shopper_token(secret, user_id, ttl)` mints the token a shop's page sends beside the public key
(`X-Shopper-Token`) to read its signed-in shopper's personal list (the same recipe as `deepshelf.tokens`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from deepshelf import tokens


def shopper_token(secret: str, user_id: str, ttl: int = 3600) -> str:
    """A shopper token for `user_id`, valid `ttl` seconds: `SHOPPER.EXPIRY.SIGNATURE`, the shopper id in
    base64url, the expiry in Unix seconds, and HMAC-SHA256 over `SHOPPER.EXPIRY` keyed with the server's
    `DEEPSHELF_TOKEN_SECRET`, in base64url (no padding). Mint it in the shop's backend, never in a page."""
    return tokens.mint(secret, user_id, ttl)


class ApiError(Exception):
    """The service answered an error: `status` (HTTP), `detail` (its message, naming the field at fault) and, for
    a 422, `errors` (every field error: loc, msg, type; empty otherwise)."""

    def __init__(self, status: int, detail: Any, errors: list[dict] | None = None):
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        self.errors = errors or []


def _feed_bytes(feed: bytes | str | os.PathLike) -> bytes:
    """import_feed's `feed` as the bytes to send: a path's file, the text of a feed given as a string, or bytes."""
    if isinstance(feed, bytes):
        return feed
    if isinstance(feed, str) and (feed.lstrip().startswith("<") or "\n" in feed.strip()):
        return feed.encode()  # the feed's own text: XML, or TSV lines
    path = Path(feed)
    if not path.is_file():
        raise FileNotFoundError(f"import_feed: no feed file {str(path)!r} (pass a path to an XML or TSV feed, "
                                "or the feed's text or bytes)")
    return path.read_bytes()


@dataclass
class Recommended:
    item_id: str
    score: float
    reason: str
    extra: dict[str, Any] = field(default_factory=dict)  # title, price, because, ... when the server sends them


@dataclass
class ItemList:
    """A list answer: the items, best first, and the `model_version` (and any other fields) that produced it."""

    items: list[Recommended]
    model_version: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return [it.item_id for it in self.items]


def _item_list(body: dict) -> ItemList:
    items = [Recommended(str(it["item_id"]), float(it.get("score", 0.0)), str(it.get("reason", "")),
                         {k: v for k, v in it.items() if k not in ("item_id", "score", "reason")})
             for it in body.get("items", [])]
    return ItemList(items, body.get("model_version"),
                    {k: v for k, v in body.items() if k not in ("items", "model_version")})


def _token_header(token: str | None) -> dict[str, str]:
    return {"X-Shopper-Token": token} if token else {}


class Client:
    """One connection pool to a deepshelf service; `key` goes in `X-API-Key` (a private key for catalogue
    writes and shoppers' data, a public one for events and reads). `http` replaces the httpx client (tests pass a
    FastAPI TestClient)."""

    def __init__(self, url: str, key: str | None = None, timeout: float = 10.0, http: httpx.Client | None = None):
        headers = {"X-API-Key": key} if key else {}
        self._own = http is None
        self._http = http or httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
        self._headers = headers

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._own:
            self._http.close()

    def _call(self, method: str, path: str, **kwargs) -> Any:
        response = self._http.request(method, path, headers={**self._headers, **kwargs.pop("headers", {})},
                                      **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
                detail, errors = body.get("detail"), body.get("errors")
            except (ValueError, AttributeError):
                detail, errors = response.text, None
            raise ApiError(response.status_code, detail, errors)
        return response.json() if response.content else None

    @staticmethod
    def _params(**values) -> dict[str, Any]:
        return {k: v for k, v in values.items() if v is not None and v != []}

    # ---- events -----------------------------------------------------------------------------------------------
    def send_events(self, events: list[dict[str, Any]]) -> int:
        """Store events (`{"user_id", "item_id", "type", "timestamp"?, "session_id"?, "value"?}`); returns how
        many were accepted (committed before the answer)."""
        return self._call("POST", "/v1/events", json={"events": events})["accepted"]

    def send_ga4(self, body: dict[str, Any]) -> dict[str, int]:
        """A GA4 Measurement Protocol body; returns `{"accepted", "skipped"}`."""
        return self._call("POST", "/v1/events/ga4", json=body)

    def user_events(self, user_id: str, limit: int = 50) -> list[dict[str, Any]]:
        return self._call("GET", f"/v1/users/{quote(user_id, safe='')}/events", params={"limit": limit})["events"]

    def erase_user(self, user_id: str) -> int:
        return self._call("DELETE", f"/v1/users/{quote(user_id, safe='')}")["erased_events"]

    # ---- catalogue --------------------------------------------------------------------------------------------
    def put_item(self, item_id: str, **fields: Any) -> int:
        """Create or replace one product (`title`, `description`, `category`, `price`, `in_stock`, `image_url`,
        `attributes`, `image_base64`)."""
        return self._call("PUT", f"/v1/items/{quote(item_id, safe='')}", json=fields)["accepted"]

    def put_items(self, items: list[dict[str, Any]]) -> int:
        """Create or replace a batch of products, each a dict with `item_id` and `put_item`'s fields; returns how
        many were stored (the whole batch is refused, as `ApiError`, if any item is invalid or an id repeats)."""
        return self._call("POST", "/v1/items", json={"items": items})["accepted"]

    def import_feed(self, feed: bytes | str | os.PathLike) -> dict[str, Any]:
        """Upsert a Google Merchant Center feed (XML or TSV); returns
        `{"accepted", "errors": [{"position", "item_id", "field", "message"}]}`.

        `feed` is a file path (`"products.xml"` or a `Path`), or the feed itself: `bytes`, or a `str` holding the
        feed's text (one that starts with `<` or spans lines). A one-line string is a path; FileNotFoundError
        names it when there is no such file."""
        data = _feed_bytes(feed)
        kind = "application/xml" if data.lstrip()[:1] == b"<" else "text/tab-separated-values"
        return self._call("POST", "/v1/items:import", content=data, headers={"Content-Type": kind})

    def item(self, item_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/items/{quote(item_id, safe='')}")

    # ---- lists ------------------------------------------------------------------------------------------------
    def recommendations(self, user_id: str, k: int = 10, shopper_token: str | None = None,
                        **rules: Any) -> ItemList:
        """"Recommended for you"; `rules`: category, min_price, max_price, in_stock, exclude, ... as query
        parameters. With a public key, `shopper_token` (that shopper's, `shopper_token()`) is needed."""
        return _item_list(self._call("GET", f"/v1/users/{quote(user_id, safe='')}/recommendations",
                                     params=self._params(k=k, **rules), headers=_token_header(shopper_token)))

    def session_recommendations(self, item_ids: list[str], k: int = 10) -> ItemList:
        return _item_list(self._call("POST", "/v1/sessions/recommendations", json={"item_ids": item_ids, "k": k}))

    def similar(self, item_id: str, k: int = 10, mode: str = "behavior") -> ItemList:
        return _item_list(self._call("GET", f"/v1/items/{quote(item_id, safe='')}/similar",
                                     params={"k": k, "mode": mode}))

    def search(self, query: str, k: int = 10, user_id: str | None = None,
               shopper_token: str | None = None) -> ItemList:
        """Search; personalised for `user_id` (with a public key, only with that shopper's `shopper_token`)."""
        return _item_list(self._call("GET", "/v1/search", params=self._params(q=query, k=k, user_id=user_id),
                                     headers=_token_header(shopper_token)))

    def popular(self, k: int = 10) -> ItemList:
        return _item_list(self._call("GET", "/v1/popular", params={"k": k}))

    # ---- operations -------------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def reload(self, run: str | None = None) -> dict[str, Any]:
        return self._call("POST", "/v1/admin/reload", json={"run": run} if run else {})
