"""The server's own header timeout (api/idle.py): a connection that sends half a request head, or nothing, or
that goes quiet mid-head after an answer, is closed; a whole request is answered as before. Served by uvicorn with
the protocol `deepshelf serve` uses, on a loopback port."""

from __future__ import annotations

import socket
import threading

import pytest
import uvicorn
from fastapi import FastAPI

from deepshelf.api import idle
from deepshelf.api.idle import HeaderTimeout


@pytest.fixture()
def port(monkeypatch):
    monkeypatch.setattr(HeaderTimeout, "timeout_s", 0.3)
    app = FastAPI()

    @app.get("/ping")
    async def ping():
        return {"ok": True}

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    # keep-alive far longer than the header timeout: what closes the connections below is the header timer
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free, log_level="error", http=HeaderTimeout,
                                           timeout_keep_alive=600))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("server did not start")
        threading.Event().wait(0.02)
    yield free
    server.should_exit = True
    thread.join(10)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a hang fails after 20 s)."""
    sock.settimeout(20)
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_half_a_header_is_answered_408_and_closed(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Half: ")
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_silent_connection_is_closed(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        assert read_all(s) == b""  # closed without a word: it never began a request


def test_a_whole_request_is_answered_then_a_stalled_next_head_closed(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(20)
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ") and first.endswith(b'{"ok":true}')
        s.sendall(b"GET /pi")  # the next request's head, never finished (uvicorn's keep-alive timer stops here)
        assert read_all(s).startswith(b"HTTP/1.1 408 ")


def test_configure_sets_the_process_timeout(monkeypatch):
    monkeypatch.setattr(HeaderTimeout, "timeout_s", idle.DEFAULT_TIMEOUT_S)
    idle.configure(2.5)
    assert HeaderTimeout.timeout_s == 2.5
