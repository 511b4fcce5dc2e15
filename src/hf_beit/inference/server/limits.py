"""Request limits of the HTTP endpoint and the errors it answers with (JSON ``{"error": message}`` + 4xx/503)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.requests import Request

    from ...pixel_budget import PixelBudget

MIB = 1024 * 1024


class RequestError(Exception):
    """A client error: ``status`` is the HTTP status code, ``message`` says what was wrong and what to do.

    ``headers`` are added to the response (``Retry-After`` on 503); ``close`` ends the connection after the answer
    (the body was not read to its end, so the connection cannot be reused).
    """

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, close: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        if close:
            self.headers["Connection"] = "close"


class ClientGone(Exception):
    """The client closed its connection before the answer was ready; the work for it was cancelled."""


def _default_max_connections() -> int:
    """Open connections: at most 2048, and 128 file descriptors below the process limit (models, threads, logs)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return 1024
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 2048
    return max(8, min(2048, soft - 128))


@dataclass(frozen=True)
class ServerLimits:
    """Upper bounds of the HTTP endpoint, enforced before any expensive work.

    Attributes:
        max_body_bytes: request body size (checked on ``Content-Length`` and while streaming).
        max_images: images per request.
        max_pixels: width * height of one image, checked on the header before decoding (decompression bombs).
        max_resized_pixels: size of one image after the processor's resize, also checked on the header (a 1x20000
            image resized to a short side of 256 would be 1.3 gigapixels).
        max_pending: images admitted and not yet answered (decoding, waiting for or in the model); more get 503
            with ``Retry-After`` (back-pressure: bounds the queueing delay).
        memory_budget_bytes: request data held at once across all requests: bodies (x3: bytes, parsed strings,
            decoded base64), fetched files, decoding and preprocessing (estimated from each header), pixel values
            waiting for the model. A request that does not fit now gets 503; one that can never fit, 413.
        decode_workers: threads decoding and preprocessing images (one image per thread at a time).
        header_timeout: seconds a connection may take to send a request's headers (also idle time before a request).
        body_timeout: seconds a request may take to send its whole body.
        keep_alive_timeout: seconds an idle keep-alive connection stays open.
        max_connections: open connections; beyond it the oldest idle connection is closed, or the new one gets 503.
    """

    max_body_bytes: int = 16 * MIB
    max_images: int = 16
    max_pixels: int = 25_000_000
    max_resized_pixels: int = 2048 * 2048
    max_pending: int = 256
    memory_budget_bytes: int = 1024 * MIB
    decode_workers: int = 2
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0
    max_connections: int = field(default_factory=_default_max_connections)

    def __post_init__(self):
        for name in ("max_body_bytes", "max_images", "max_pixels", "max_resized_pixels", "max_pending",
                     "memory_budget_bytes", "decode_workers", "max_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"ServerLimits.{name} must be >= 1; got {getattr(self, name)}.")
        for name in ("header_timeout", "body_timeout", "keep_alive_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ServerLimits.{name} must be > 0 seconds; got {getattr(self, name)}.")

    @property
    def pixel_budget(self) -> PixelBudget:
        """The per-image budget checked on every image header."""
        from ...pixel_budget import PixelBudget  # torch: not imported by `hf-beit serve --help`

        return PixelBudget(max_pixels=self.max_pixels, max_resized_pixels=self.max_resized_pixels)


async def _read_chunks(request: Request, max_bytes: int, on_chunk: Any) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RequestError(413, f"Request body exceeds {max_bytes} bytes; send fewer or smaller images.",
                               close=True)
        if on_chunk is not None:
            on_chunk(len(chunk))
        chunks.append(chunk)
    return b"".join(chunks)


def declared_length(request: Request, max_bytes: int) -> int | None:
    """The ``Content-Length`` of the request (``None`` if chunked); 400/413 if invalid or above ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    if not declared.isdigit() or len(declared) > 20:
        raise RequestError(400, f"Invalid Content-Length header {declared[:40]!r}.", close=True)
    if int(declared) > max_bytes:
        raise RequestError(413, f"Request body is {int(declared)} bytes; this server accepts at most {max_bytes} "
                                "bytes. Send fewer or smaller images per request.", close=True)
    return int(declared)


async def read_body(request: Request, max_bytes: int, timeout: float | None = None, on_chunk: Any = None) -> bytes:
    """The request body, refusing (413) bodies above ``max_bytes`` without buffering more than that, and (408)
    bodies not complete within ``timeout`` seconds. ``on_chunk(size)`` is called before each chunk is kept."""
    from starlette.requests import ClientDisconnect

    declared_length(request, max_bytes)
    try:
        return await asyncio.wait_for(_read_chunks(request, max_bytes, on_chunk), timeout)
    except asyncio.TimeoutError:
        raise RequestError(408, f"The request body was not received within {timeout:g} s; send it at once.",
                           close=True) from None
    except ClientDisconnect:
        raise ClientGone from None
