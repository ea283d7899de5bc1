"""`create_app(settings)`: the FastAPI application. Nothing happens at import; the store is opened and the run
loaded in the lifespan, and closed on shutdown."""

from __future__ import annotations

import logging
import re
from contextlib import asynccontextmanager

import anyio.to_thread

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from deepshelf import __version__
from deepshelf.errors import DeepshelfError
from deepshelf.api import idle
from deepshelf.api.metrics import Metrics, MetricsMiddleware
from deepshelf.api.openapi_doc import allowed_methods, install as install_openapi
from deepshelf.api.routes import admin, analytics, events, experiments, integrations, items, recommendations, system
from deepshelf.api.routes import widget
from deepshelf.api import fast_route
from deepshelf.engine.service import NotAvailable, NotFound, NotReady, Service
from deepshelf.engine.settings import Settings
from deepshelf.api.shedding import ShedLoad
from deepshelf.api.security_headers import SecurityHeaders
from deepshelf.api.store_errors import install as install_store_errors
from deepshelf.api.validation import edge_error, install as install_validation
from deepshelf.storage import open_store

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = await run_in_threadpool(open_store, settings.database, settings.sqlite_synchronous,
                                        settings.store_timeout_s, settings.store_connections)
        # Store calls run in this pool (plain `def` routes), never on the event loop, so a stalled database holds
        # those requests only, not /health or the docs. A thread per admitted request, at most 64: the work is
        # CPU-bound under one GIL, where more threads only compete with the event loop for it.
        anyio.to_thread.current_default_thread_limiter().total_tokens = min(settings.max_concurrent_requests, 64)
        idle.configure(settings.header_timeout_s)  # this process's connections (served with idle.HeaderTimeout)
        service = Service(settings, store, metrics)
        await run_in_threadpool(service.start)
        app.state.service = service
        if not settings.keys:
            log.warning("no API keys configured (DEEPSHELF_API_KEYS, DEEPSHELF_PUBLIC_KEYS): every call that needs a "
                        "key will be refused; only the open ones are served")
        if not settings.token_secret.get_secret_value():
            log.warning("shopper tokens are off (no DEEPSHELF_TOKEN_SECRET): personal lists and personalised "
                        "search answer private keys only")
        try:
            yield
        finally:
            await run_in_threadpool(service.stop)

    app = FastAPI(title="deepshelf", version=__version__, lifespan=lifespan,
                  description="Recommendations, similar products and search for an online shop.")
    app.state.settings = settings
    app.state.metrics = metrics
    # Added first, so it runs inside the metrics middleware: shed and timed-out requests are counted too.
    app.add_middleware(ShedLoad, limit=settings.max_concurrent_requests, retry_after_s=settings.retry_after_s,
                       body_timeout_s=settings.body_timeout_s)
    app.add_middleware(MetricsMiddleware, metrics=metrics, max_body=settings.max_body_bytes)
    if settings.cors_origin_list:  # outermost: preflights are answered here, and every answer (a 401 too) is marked
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origin_list), allow_methods=["GET", "POST"],
                           allow_headers=["X-API-Key", "X-Shopper-Token", "Content-Type", "Accept"], max_age=600)
    app.add_middleware(SecurityHeaders)  # outermost of all: every answer, preflights included, carries nosniff
    for module in (events, recommendations, items, admin, analytics, experiments, system, integrations, widget):
        app.include_router(module.router)
    fast_route.install(app)  # the storefront's hot read without per-request dependency solving (same answers)
    install_openapi(app, settings)  # each operation's key scope and every status it answers
    _add_error_handlers(app)
    install_validation(app, settings)  # the 422 answer, per-request input checks
    web = system.web_dir()
    if web.is_dir():  # the pages may not be built/installed; the API works without them
        app.mount("/static", StaticFiles(directory=str(web)), name="static")
    return app


_UNREADABLE_BODY = "There was an error parsing the body"  # fastapi.routing's detail for it
# an absolute file path (POSIX or Windows) inside an error message
_SERVER_PATH = re.compile(r"(?:[A-Za-z]:\\|(?<![\w.:/])/)(?:[^\s'\",;:()/]+[/\\]?)+")


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(NotAvailable)
    async def not_available(request: Request, exc: NotAvailable):
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(DeepshelfError)
    async def bad_input(request: Request, exc: DeepshelfError):
        # The message names the field or row at fault; a file path in it (a run, a dataset) is the server's
        # business, so it goes to the log only.
        log.info("refused %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": _SERVER_PATH.sub("<path>", str(exc))}, status_code=400)

    retry_after = {"Retry-After": str(app.state.settings.retry_after_s)}

    @app.exception_handler(NotReady)
    async def not_ready(request: Request, exc: NotReady):
        return JSONResponse({"detail": str(exc)}, status_code=503, headers=retry_after)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 405:
            # Starlette names the methods of the first route whose path matched; a path served by several routes
            # (GET and POST /v1/items) allows all of theirs.
            allowed = allowed_methods(request.app.openapi(), request.url.path)
            return JSONResponse({"detail": "Method Not Allowed"}, status_code=405,
                                headers={"Allow": ", ".join(allowed)})
        if exc.status_code == 400 and exc.detail == _UNREADABLE_BODY:
            # FastAPI's answer to a body json.loads cannot even decode (not UTF-8); malformed JSON already answers
            # 422 naming the body, so this does too.
            return Response(edge_error(["body"], "the body is not JSON text in UTF-8", "json_invalid"),
                            status_code=422, media_type="application/json")
        return await http_exception_handler(request, exc)

    install_store_errors(app)  # 503 (saying whether a failed write may be stored), 507 for a full disk

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)
