"""Liveness (/health), readiness (/ready), Prometheus metrics and the web pages."""

from __future__ import annotations

import html
import json
import logging
from importlib import resources

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from deepshelf.api.deps import PrivateAuth, ServiceDep
from deepshelf.api.schemas import Health
from deepshelf.tokens import mint as mint_token

log = logging.getLogger(__name__)
router = APIRouter()


class Ready(BaseModel):
    """Whether this server process can answer: its store answered a query just now and a run is loaded."""

    ready: bool
    store: str  # sqlite or postgresql
    store_ok: bool
    # a write was refused lately because the store's disk is full (writes answer 507 meanwhile); ready again after
    # a write succeeds, or a minute after the last refusal
    disk_full: bool = False
    model_version: str | None


def web_dir():
    return resources.files("deepshelf") / "web"


@router.get("/health", response_model=Health, tags=["system"])
async def health(service: ServiceDep) -> Health:
    """Liveness: answered on the event loop from memory alone (never the store), so it stays fast while the
    database is slow or down and while requests are being shed; /ready says whether requests can be served."""
    state = service.state
    return Health(status="ok" if state is not None else "starting", model_version=state.version if state else None,
                  store=service.store.kind, items=len(state.view) if state else 0,
                  items_new_since_training=state.view.n_new if state else 0)


@router.get("/ready", response_model=Ready, tags=["system"],
            responses={503: {"model": Ready, "description": "the store did not answer in time, its disk is full, or "
                                                             "no run is loaded"}})
def ready(service: ServiceDep, response: Response, request: Request) -> Ready:
    """Readiness: one query to the store (bounded by `store_timeout_s`), no write refused lately for a full disk,
    and the loaded run; 503 when one is missing, so a load balancer sends requests elsewhere until it is back."""
    try:
        service.store.schema_version()
        store_ok = True
    except Exception as exc:  # any failure to answer means not ready; the reason goes to the log, not the client
        log.warning("readiness: the store did not answer: %s", exc)
        store_ok = False
    full = service.store.full_disk.now()
    state = service.state
    loaded = state is not None and state.run is not None
    out = Ready(ready=store_ok and loaded and not full, store=service.store.kind, store_ok=store_ok, disk_full=full,
                model_version=state.version if loaded else None)
    if not out.ready:
        response.status_code = 503
        response.headers["Retry-After"] = str(request.app.state.settings.retry_after_s)
    return out


@router.get("/metrics", tags=["system"], response_class=Response, dependencies=[PrivateAuth],
            responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _page(name: str, title: str):
    path = web_dir() / name
    if path.is_file():
        return FileResponse(str(path), media_type="text/html")
    return HTMLResponse(f"<!doctype html><title>deepshelf</title><h1>{title}</h1>"
                        "<p>The web pages are not installed; the API is documented at <a href=/docs>/docs</a>.</p>")


STOREFRONT_TOKEN_TTL_S = 12 * 3600  # a storefront page's shopper tokens last this long (a reload mints new ones)


@router.get("/", include_in_schema=False)
def index(request: Request):
    """The storefront, given a public key (never a private one) and the demo's shoppers, if any."""
    path = web_dir() / "index.html"
    if not path.is_file():
        return _page("index.html", "deepshelf")
    settings = request.app.state.settings
    public = sorted(settings.public_key_set)
    shoppers = getattr(request.app.state, "storefront_shoppers", ())
    page = path.read_text(encoding="utf-8")
    secret = settings.token_secret.get_secret_value()
    # the advertised (demo) shoppers' tokens, minted here as a shop's backend mints its signed-in shopper's
    tokens = {s: mint_token(secret, s, STOREFRONT_TOKEN_TTL_S) for s in shoppers} if secret else {}
    for name, value in (("deepshelf-public-key", public[0] if public else ""),
                        ("deepshelf-shoppers", ",".join(shoppers)),
                        ("deepshelf-shopper-tokens", json.dumps(tokens) if tokens else "")):
        page = page.replace(f'<meta name="{name}" content="">',
                            f'<meta name="{name}" content="{html.escape(value, quote=True)}">')
    return HTMLResponse(page)


@router.get("/admin", include_in_schema=False)
def admin():
    return _page("admin.html", "deepshelf admin")
