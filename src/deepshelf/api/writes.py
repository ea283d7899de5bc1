"""One socket write per answer: uvicorn writes a response's head and its body with a `transport.write` each, two
system calls (and two TCP segments) for every list answer; `OneWrite` holds what is written while an answer is
being sent and hands it to the socket in one write when the answer is complete (`flush`, from the protocol's
`on_response_complete`), or at the latest on the event loop's next turn (a streamed body, a `100 Continue`), and
before the connection closes. The bytes on the wire are the same. Used by the protocol `deepshelf serve` runs
(`idle.HeaderTimeout`); what a write cost is in docs/benchmarks.md (Service, where the time goes: `socket write`).
"""

from __future__ import annotations


class OneWrite:
    """A transport that holds writes until `flush` (or the loop's next turn); everything else is the transport's."""

    def __init__(self, transport, loop):
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._held:
            self._loop.call_soon(self.flush)  # never held past this turn of the loop
        self._held.append(bytes(data))

    def flush(self) -> None:
        if self._held:
            data = b"".join(self._held) if len(self._held) > 1 else self._held[0]
            self._held.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def writelines(self, lines) -> None:
        for data in lines:
            self.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._held))

    def __getattr__(self, name):  # is_closing, get_extra_info, pause_reading, ...: the transport's own
        return getattr(self._transport, name)
