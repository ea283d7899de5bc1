"""A header timeout in the server itself: a connection that has not sent a whole request head within
`header_timeout_s` of connecting, or of its last answer, is closed (with a 408 when it had begun one).

uvicorn closes an idle keep-alive connection after `timeout_keep_alive`, but only until its first byte arrives, and
has no timer at all before the first request: a client that sends half a header (or nothing) holds its socket
for as long as it likes, and enough of them exhaust the server's file descriptors (issue 27, F5). This is uvicorn's
httptools protocol with that one timer added; `deepshelf serve` runs uvicorn with it (`http=HeaderTimeout`).
A body that stalls is ShedLoad's (`body_timeout_s`, 408); a request being answered has no timer here.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from deepshelf.api.writes import OneWrite

DEFAULT_TIMEOUT_S = 10.0
_408_BODY = b'{"detail":"the request head was not received in time"}'
_408 = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: " + str(len(_408_BODY)).encode() + b"\r\n\r\n" + _408_BODY)


class HeaderTimeout(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose request head does not arrive in time.

    One timer per connection, re-armed only when it fires (a request costs two attribute writes, not a timer
    cancelled and scheduled): it closes the connection when a head has been awaited for `timeout_s`."""

    timeout_s: float = DEFAULT_TIMEOUT_S  # set per process from the settings (`configure`)

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(OneWrite(transport, self.loop))  # an answer's head and body in one write (writes.py)
        self._head_begun = False
        self._awaiting_since: float | None = self.loop.time()  # None while a request is being answered
        self._head_timer = self.loop.call_later(self.timeout_s, self._check)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_since is not None:
            self._head_begun = True
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._awaiting_since = None
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        self.transport.flush()
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not pipelined:
            self._head_begun = False
            self._awaiting_since = self.loop.time()  # the next request's head, from now

    def connection_lost(self, exc) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _check(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        since = self._awaiting_since
        waited = 0.0 if since is None else self.loop.time() - since
        if waited < self.timeout_s:
            self._head_timer = self.loop.call_later(self.timeout_s - waited, self._check)
            return
        if self._head_begun:
            self.transport.write(_408)
        self.transport.close()


def configure(timeout_s: float) -> None:
    """This process's header timeout (the app's lifespan sets it from `Settings.header_timeout_s`)."""
    HeaderTimeout.timeout_s = float(timeout_s)
