"""uvicorn's HTTP/1.1 protocol with the guards it lacks: a deadline for request headers and a connection limit.

uvicorn closes idle keep-alive connections but waits forever for the first request of a connection and for headers
sent a byte at a time, and it accepts connections until the process runs out of file descriptors (then ``/health``
cannot connect either). :func:`guarded_protocol` returns an ``H11Protocol`` subclass that

* closes a connection whose request headers are not complete ``header_timeout`` seconds after it opened (or after
  its previous response), answering 408 if it had started sending;
* keeps at most ``max_connections`` open: a new connection beyond that closes the oldest idle one (no request in
  progress: slow or silent clients first), or is answered 503 with ``Retry-After`` and closed if all are busy;
* closes connections *lingering*: after an answer sent before the request body was read (413, 503, 408) it sends
  FIN and discards what the client still sends until it stops (``linger_idle`` seconds without data), for at most
  ``linger_total`` seconds and ``linger_bytes`` bytes, so the client reads the answer instead of a connection reset
  (nginx's ``lingering_timeout`` / ``lingering_time``).

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


class _LingeringTransport:
    """A transport whose ``close()`` half-closes and keeps reading (discarded) for a while before closing."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop, idle: float, total: float):
        self._transport, self._loop, self._idle, self._total = transport, loop, idle, total
        self._idle_timer: asyncio.TimerHandle | None = None
        self.lingering = False
        self.discarded = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def close(self) -> None:
        if self.is_closing():
            return
        if not self._transport.can_write_eof():  # pragma: no cover - TLS
            self._transport.close()
            return
        self.lingering = True
        self._transport.write_eof()  # FIN after the answer already written
        self._transport.resume_reading()
        self._loop.call_later(self._total, self.really_close)
        self.touch()

    def touch(self) -> None:
        """Data arrived while lingering: wait ``idle`` seconds more for the client to finish."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = self._loop.call_later(self._idle, self.really_close)

    def closed(self) -> bool:
        """Closed for good (a lingering transport is closing, but still holds its connection)."""
        return self._transport.is_closing()

    def really_close(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._transport.close()


class GuardedH11Protocol(H11Protocol):
    """``H11Protocol`` with a header deadline, a connection limit and lingering close (see the module docstring)."""

    header_timeout: float = 10.0
    max_connections: int = 1024
    linger_idle: float = 5.0
    linger_total: float = 30.0
    linger_bytes: int = 16 * 1024 * 1024

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        transport = _LingeringTransport(transport, self.loop, self.linger_idle, self.linger_total)
        super().connection_made(transport)  # type: ignore[arg-type]
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
        if self.transport.lingering:  # the answer is sent: what still arrives is discarded
            self.transport.discarded += len(data)
            if self.transport.discarded > self.linger_bytes:
                self.transport.really_close()
            else:
                self.transport.touch()
            return
        if not self._busy():
            self._partial = True
        super().data_received(data)

    def eof_received(self) -> None:
        if self.transport.lingering:
            self.transport.really_close()

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
                if isinstance(c, GuardedH11Protocol) and c is not self and not c.transport.closed()]
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
        if self.transport.lingering:
            self.transport.really_close()
            return
        if self.transport.is_closing():
            return
        if self._partial:
            self.transport.write(_raw_response(status, message))
        self.transport.close()


def guarded_protocol(header_timeout: float, max_connections: int, linger_bytes: int = 16 * 1024 * 1024
                     ) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` subclass with these limits, for ``uvicorn.Config(http=...)``."""
    attributes: dict[str, Any] = {"header_timeout": header_timeout, "max_connections": max_connections,
                                  "linger_bytes": linger_bytes}
    return type("GuardedH11Protocol", (GuardedH11Protocol,), attributes)
