"""Health, Prometheus metrics and the web pages."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from deepshelf.serving.deps import ServiceDep
from deepshelf.serving.schemas import Health

router = APIRouter()


def web_dir():
    return resources.files("deepshelf") / "web"


@router.get("/health", response_model=Health, tags=["system"])
def health(service: ServiceDep) -> Health:
    state = service.state
    return Health(status="ok" if state is not None else "starting", model_version=state.version if state else None,
                  store=service.store.kind, items=len(state.view) if state else 0,
                  items_new_since_training=state.view.n_new if state else 0)


@router.get("/metrics", tags=["system"], response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _page(name: str, title: str):
    path = web_dir() / name
    if path.is_file():
        return FileResponse(str(path), media_type="text/html")
    return HTMLResponse(f"<!doctype html><title>deepshelf</title><h1>{title}</h1>"
                        "<p>The web pages are not installed; the API is documented at <a href=/docs>/docs</a>.</p>")


@router.get("/", include_in_schema=False)
def index():
    return _page("index.html", "deepshelf")


@router.get("/admin", include_in_schema=False)
def admin():
    return _page("admin.html", "deepshelf admin")
