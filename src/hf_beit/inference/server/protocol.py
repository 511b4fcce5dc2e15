"""uvicorn's HTTP/1.1 protocol with the guards it lacks: a deadline for request headers and a connection limit.

uvicorn closes idle keep-alive connections but waits forever for the first request of a connection and for headers
sent a byte at a time, and it accepts connections until the process runs out of file descriptors (then ``/health``
cannot connect either). :func:`guarded_protocol` returns an ``H11Protocol`` subclass that

* closes a connection whose request headers are not complete ``header_timeout`` seconds after it opened (or after
  its previous response), answering 408 if it had started sending;
* keeps at most ``max_connections`` open: a new connection beyond that closes the oldest idle one (no request in
  progress: slow or silent clients first), or is answered 503 with ``Retry-After`` and closed if all are busy.

Body deadlines are the application's (:func:`hf_beit.inference.server.limits.read_body`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


def _raw_response(status: str, message: str, extra: str = "") -> bytes:
    body = json.dumps({"error": message}).encode()
    head = (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n{extra}"
            "connection: close\r\n\r\n")
    return head.encode("ascii") + body


class GuardedH11Protocol(H11Protocol):
    """``H11Protocol`` with a header deadline and a connection limit (set by :func:`guarded_protocol`)."""

    header_timeout: float = 10.0
    max_connections: int = 1024

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._opened = self.loop.time()
        self._header_timer: asyncio.TimerHandle | None = None
        self._partial = False
        if not self._make_room():
            transport.write(_raw_response("503 Service Unavailable", "Server has too many open connections; retry "
                                          "shortly.", "retry-after: 1\r\n"))
            transport.close()
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._busy():
            self._partial = True
        super().data_received(data)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's headers are complete
            self._cancel_header_timer()
            self._partial = False

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()  # the next request on this keep-alive connection gets the same deadline

    def _busy(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _make_room(self) -> bool:
        mine = [c for c in self.connections
                if isinstance(c, GuardedH11Protocol) and c is not self and not c.transport.is_closing()]
        if len(mine) < self.max_connections:
            return True
        idle = [c for c in mine if not c._busy()]
        if not idle:
            return False
        min(idle, key=lambda c: c._opened)._close("408 Request Timeout", "Connection closed to make room for others.")
        return True

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_deadline)

    def _cancel_header_timer(self) -> None:
        if getattr(self, "_header_timer", None) is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline(self) -> None:
        self._header_timer = None
        if not self._busy():
            self._close("408 Request Timeout", f"Request headers not received within {self.header_timeout:g} s.")

    def _close(self, status: str, message: str) -> None:
        """Close an idle connection, answering ``status`` if the client had started a request."""
        if self.transport.is_closing():
            return
        if self._partial:
            self.transport.write(_raw_response(status, message))
        self.transport.close()


def guarded_protocol(header_timeout: float, max_connections: int) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` subclass with these limits, for ``uvicorn.Config(http=...)``."""
    attributes: dict[str, Any] = {"header_timeout": header_timeout, "max_connections": max_connections}
    return type("GuardedH11Protocol", (GuardedH11Protocol,), attributes)
