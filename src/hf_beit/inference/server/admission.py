"""Admission control: a memory budget and a bound on pending images shared by all requests in flight.

Every request holds a :class:`Ticket`. It reserves bytes before it holds them (the body from ``Content-Length``
before reading it, each image's decoding cost from its header before decoding it, fetched bytes as they arrive) and
counts its images while they are pending. A reservation that does not fit now is refused with 503 and a
``Retry-After`` estimated from the model's measured throughput; one that could never fit with 413. Closing the
ticket returns everything. Reservations never wait, so no request can hold memory while waiting for memory.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator

from .limits import MIB, RequestError

#: A body is held about three times: the bytes, the parsed JSON strings and the decoded base64.
BODY_COPIES = 3


class Admission:
    """Shared counters (thread-safe: decode workers reserve too)."""

    def __init__(self, memory_budget_bytes: int, max_pending: int, images_per_second: Callable[[], float]):
        self.capacity = memory_budget_bytes
        self.max_pending = max_pending
        self._rate = images_per_second
        self._lock = threading.Lock()
        self.reserved = 0
        self.pending = 0
        self.peak_reserved = 0
        self.released = 0  # running total of bytes given back (drives the allocator trimming)
        self.refused = 0

    def ticket(self) -> Ticket:
        """A new, empty reservation for one request."""
        return Ticket(self)

    def retry_after(self) -> int:
        """Seconds after which the pending images will likely have been served (1..60)."""
        rate = self._rate()
        if not rate or rate <= 0:
            return 1
        return max(1, min(60, math.ceil(self.pending / rate)))

    def _busy(self, message: str) -> RequestError:
        self.refused += 1
        seconds = self.retry_after()
        return RequestError(503, f"Server busy: {message}; retry in {seconds} s.", {"Retry-After": str(seconds)})

    def _reserve(self, nbytes: int, total: int, what: str) -> None:
        """Reserve ``nbytes`` for a request that then holds ``total``; 413 if ``total`` exceeds the budget."""
        if total > self.capacity:
            raise RequestError(413, f"{what} needs about {total / MIB:.0f} MiB, more than this server's whole "
                                    f"request memory budget ({self.capacity / MIB:.0f} MiB). Send smaller images.")
        with self._lock:
            if self.reserved + nbytes > self.capacity:
                raise self._busy(f"its request memory budget ({self.capacity / MIB:.0f} MiB) is in use")
            self.reserved += nbytes
            self.peak_reserved = max(self.peak_reserved, self.reserved)

    def _add_pending(self, count: int) -> None:
        with self._lock:
            if self.pending + count > self.max_pending:
                raise self._busy(f"{self.pending} images are waiting (at most {self.max_pending})")
            self.pending += count

    def _release(self, nbytes: int, count: int) -> None:
        with self._lock:
            self.reserved -= nbytes
            self.released += nbytes
            self.pending -= count


class Ticket:
    """What one request holds; ``with ticket.held():`` closes it (returning everything) at the end."""

    def __init__(self, admission: Admission):
        self._admission = admission
        self._lock = threading.Lock()
        self.bytes = 0
        self.images = 0
        self.closed = False

    def reserve(self, nbytes: int, what: str = "This request") -> None:
        """Hold ``nbytes`` more; 503 if the budget is in use, 413 if it could never fit."""
        if nbytes <= 0:
            return
        with self._lock:
            if self.closed:
                return
            self._admission._reserve(nbytes, self.bytes + nbytes, what)
            self.bytes += nbytes

    def release(self, nbytes: int) -> None:
        """Give back part of what was reserved (e.g. an image's decoding memory once it is preprocessed)."""
        with self._lock:
            nbytes = min(nbytes, self.bytes)
            if self.closed or nbytes <= 0:
                return
            self.bytes -= nbytes
            self._admission._release(nbytes, 0)

    def add_images(self, count: int) -> None:
        """Count ``count`` more pending images; 503 above the server's ``max_pending``."""
        with self._lock:
            if not self.closed:
                self._admission._add_pending(count)
                self.images += count

    def close(self) -> None:
        """Return every byte and image this request held (idempotent)."""
        with self._lock:
            if not self.closed:
                self.closed = True
                self._admission._release(self.bytes, self.images)
                self.bytes = self.images = 0

    @contextlib.contextmanager
    def held(self) -> Iterator[Ticket]:
        """The ticket, closed on exit whatever happens."""
        try:
            yield self
        finally:
            self.close()
