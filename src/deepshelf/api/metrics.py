"""Request metrics: Prometheus counters / histograms per route (for /metrics) and a rolling window of recent
latencies per route (for the admin page's percentiles), recorded by one ASGI middleware that also caps body size."""

from __future__ import annotations

import json
import threading
import time
from collections import deque

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """One registry per app, so several apps in one process (tests) do not collide."""

    def __init__(self, window: int = 10_000):
        self.registry = CollectorRegistry()
        self.requests = Counter("deepshelf_http_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("deepshelf_http_request_duration_seconds", "HTTP request latency by route",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.events = Counter("deepshelf_events_ingested_total", "Shopper events committed to the store",
                              registry=self.registry)
        # the impression writer's (engine/impressions.py): here, as the app's lifespan may run more than once
        self.impressions_recorded = Counter("deepshelf_impressions_recorded_total",
                                            "List answers stored as impressions", registry=self.registry)
        self.impressions_dropped = Counter("deepshelf_impressions_dropped_total",
                                           "List answers not recorded: the queue was full (the store slow or down)",
                                           registry=self.registry)
        self.model_info = Gauge("deepshelf_model_info", "The run being served (value 1, version label)",
                                ["version"], registry=self.registry)
        self.model_loaded = Gauge("deepshelf_model_loaded_timestamp_seconds", "When the served run was loaded",
                                  registry=self.registry)
        self.window = window
        self._recent: dict[tuple[str, str], deque] = {}
        self._series: dict[tuple[str, str, int], tuple] = {}  # (method, route, status): counter, histogram, window
        self._lock = threading.Lock()

    def set_model(self, version: str | None) -> None:
        self.model_info.clear()
        self.model_info.labels(version=version or "none").set(1)
        self.model_loaded.set(time.time())

    def events_ingested(self, n: int) -> None:
        self.events.inc(n)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # the labelled children are looked up once per (method, route, status): `labels()` validates and locks
        # on every call
        series = self._series.get((method, route, status))
        if series is None:
            with self._lock:
                recent = self._recent.setdefault((method, route), deque(maxlen=self.window))
                series = self._series.setdefault((method, route, status), (
                    self.requests.labels(method, route, str(status)), self.latency.labels(method, route), recent))
        count, latency, recent = series
        count.inc()
        latency.observe(seconds)
        recent.append(seconds)

    def percentiles(self) -> list[dict]:
        out = []
        for (method, route), recent in sorted(self._recent.items(), key=lambda kv: kv[0][1]):
            values = np.fromiter(list(recent), dtype=np.float64)
            if not len(values):
                continue
            p50, p95, p99 = np.percentile(values, [50, 95, 99]) * 1000
            out.append({"route": route, "method": method, "count": int(self.requests_count(method, route)),
                        "p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3),
                        "p99_ms": round(float(p99), 3)})
        return out

    def requests_count(self, method: str, route: str) -> float:
        total = 0.0
        for metric in self.requests.collect():
            for sample in metric.samples:
                if (sample.name.endswith("_total") and sample.labels.get("method") == method
                        and sample.labels.get("route") == route):
                    total += sample.value
        return total


class _BodyTooLarge(Exception):
    pass


class MetricsMiddleware:
    """Pure ASGI (cheaper than BaseHTTPMiddleware on the hot path): times each request under its route template
    (`/v1/users/{user_id}/recommendations`, so labels stay few) and refuses bodies over `max_body` with 413."""

    def __init__(self, app, metrics: Metrics, max_body: int):
        self.app = app
        self.metrics = metrics
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500, "started": False}
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_body
                except ValueError:
                    too_big = False
                if too_big:
                    await _send_413(send, self.max_body)
                    self._record(scope, 413, start)
                    return

        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    # answer now: the app may turn the error below into its own answer (FastAPI: a 400)
                    if not status["started"]:
                        await _send_413(send, self.max_body)
                        status.update(code=413, started=True, refused=True)
                    raise _BodyTooLarge
            return message

        async def tracking_send(message):
            if status.get("refused"):
                return  # the 413 is the answer
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not status["started"]:
                await _send_413(send, self.max_body)
            status["code"] = 413
        finally:
            self._record(scope, status["code"], start)

    def _record(self, scope, code: int, start: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or ("/static" if scope.get("path", "").startswith("/static") else
                                                "unmatched")
        self.metrics.observe(scope.get("method", "GET"), path, code, time.perf_counter() - start)


async def _send_413(send, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
