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
from deepshelf.api.writes import OneWrite


@pytest.fixture()
def port(monkeypatch):
    monkeypatch.setattr(HeaderTimeout, "timeout_s", 0.3)
    app = FastAPI()

    @app.get("/ping")
    async def ping():
        return {"ok": True}

    @app.api_route("/stream", methods=["GET", "HEAD"])
    async def stream():
        from fastapi.responses import StreamingResponse

        async def parts():
            for part in (b"one,", b"two,", b"three"):
                yield part
        return StreamingResponse(parts(), media_type="text/plain")

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


class Recorded(OneWrite):
    """OneWrite counting what reaches the socket."""

    writes: list[bytes] = []

    def __init__(self, transport, loop):
        super().__init__(transport, loop)
        real = transport.write

        def write(data):
            Recorded.writes.append(bytes(data))
            real(data)
        self._transport = type("Spy", (), {"write": staticmethod(write),
                                           "__getattr__": lambda _, name: getattr(transport, name)})()


def read_answer(sock: socket.socket, ending: bytes) -> bytes:
    sock.settimeout(20)
    out = b""
    while not out.endswith(ending):
        chunk = sock.recv(65536)
        assert chunk, out
        out += chunk
    return out


def test_an_answer_leaves_in_one_write_and_keep_alive_streams_and_head_still_work(port, monkeypatch):
    """An answer's head and body reach the socket in one write (writes.OneWrite); a streamed answer, a HEAD answer
    (no body) and the next request on the same connection come out whole."""
    monkeypatch.setattr(idle, "OneWrite", Recorded)
    Recorded.writes = []
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        first = read_answer(s, b'{"ok":true}')
        assert first.startswith(b"HTTP/1.1 200 ")
        assert len(Recorded.writes) == 1 and Recorded.writes[0] == first  # head and body: one write
        s.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        streamed = read_answer(s, b"0\r\n\r\n")
        assert b"one," in streamed and b"three" in streamed and b"transfer-encoding: chunked" in streamed
        s.sendall(b"HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        head = read_answer(s, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_all(s).endswith(b'{"ok":true}')  # answered, then closed: nothing held back at the close


def test_held_writes_leave_by_the_next_turn_of_the_loop():
    """What is written outside a complete answer (a streamed part, `100 Continue`) is not held past the loop's
    next turn; a close sends what is held first."""
    import asyncio

    class Transport:
        def __init__(self):
            self.sent, self.closed = [], False

        def write(self, data):
            self.sent.append(data)

        def is_closing(self):
            return self.closed

        def close(self):
            self.closed = True

    async def scenario():
        loop = asyncio.get_running_loop()
        t = Transport()
        w = OneWrite(t, loop)
        w.write(b"head|")
        w.write(b"body")
        assert t.sent == []
        await asyncio.sleep(0)
        assert t.sent == [b"head|body"]
        w.write(b"last")
        w.close()
        assert t.sent == [b"head|body", b"last"] and t.closed

    asyncio.run(scenario())
