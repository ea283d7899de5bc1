"""Overload and stalled bodies, per server process.

A bound on requests in progress: the next ones are answered 503 with `Retry-After` at once instead of queueing,
so the requests being served stay fast and a burst costs no memory. A request body that stalls longer than the
body timeout is answered 408 and its connection closed. (docs/benchmarks.md, "Overload", measures this
middleware against uvicorn's own `limit_concurrency`, which counts idle keep-alive connections too and answers
without `Retry-After`.)

uvicorn has no header read timeout: a connection that sends half a header is held open until the client leaves.
The reverse proxy closes those (deploy/nginx.conf, `client_header_timeout`); README, "Service".
"""

from __future__ import annotations

import asyncio
import json

_BODY_HEADERS = (b"content-length", b"transfer-encoding")


class ShedLoad:
    """Pure ASGI middleware. `exempt` paths (liveness) are always answered: they touch neither store nor model."""

    def __init__(self, app, limit: int, retry_after_s: int, body_timeout_s: float,
                 exempt: tuple[str, ...] = ("/health",)):
        self.app = app
        self.limit = limit
        self.retry_after = str(retry_after_s).encode()
        self.body_timeout_s = body_timeout_s
        self.exempt = frozenset(exempt)
        self.active = 0  # one event loop per process: no lock needed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in self.exempt:
            return await self.app(scope, receive, send)
        if self.active >= self.limit:
            await _respond(send, 503, "the server is busy; retry", [(b"retry-after", self.retry_after)])
            return
        self.active += 1
        try:
            if any(name in _BODY_HEADERS for name, _ in scope.get("headers", ())):
                await self._with_body_timeout(scope, receive, send)
            else:  # no body to wait for
                await self.app(scope, receive, send)
        finally:
            self.active -= 1

    async def _with_body_timeout(self, scope, receive, send):
        state = {"body_done": False, "started": False, "cut": False}

        async def timed_receive():
            if state["body_done"]:
                return await receive()  # e.g. a streaming response listening for the client to leave
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout_s)
            except asyncio.TimeoutError:
                if not state["started"]:
                    state["started"] = state["cut"] = True
                    await _respond(send, 408, f"request body not received within {self.body_timeout_s:g} s",
                                   [(b"connection", b"close")])
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                state["body_done"] = True
            return message

        async def guarded_send(message):
            if state["cut"]:
                return  # the 408 has been sent; the app's own answer to the disconnect goes nowhere
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except Exception:
            if not state["cut"]:
                raise


async def _respond(send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})
