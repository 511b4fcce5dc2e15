"""Request limits of the HTTP endpoint and the errors it answers with (JSON ``{"error": message}`` + 4xx)."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError
from starlette.requests import Request


class RequestError(Exception):
    """A client error: ``status`` is the HTTP status code, ``message`` says what was wrong and what to do."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ServerLimits:
    """Upper bounds enforced before any expensive work.

    Attributes:
        max_body_bytes: request body size (checked on ``Content-Length`` and while streaming).
        max_images: images per request.
        max_pixels: width * height of one image, checked on the header before decoding (decompression bombs).
        max_pending_requests: requests waiting for the model; more get 503 (back-pressure).
    """

    max_body_bytes: int = 16 * 1024 * 1024
    max_images: int = 16
    max_pixels: int = 25_000_000
    max_pending_requests: int = 1024

    def __post_init__(self):
        for name in ("max_body_bytes", "max_images", "max_pixels", "max_pending_requests"):
            if getattr(self, name) < 1:
                raise ValueError(f"ServerLimits.{name} must be >= 1; got {getattr(self, name)}.")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refusing (413) bodies above ``max_bytes`` without buffering more than that."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(400, f"Invalid Content-Length header {declared!r}.")
        if int(declared) > max_bytes:
            raise RequestError(413, f"Request body is {int(declared)} bytes; this server accepts at most {max_bytes} "
                                    "bytes. Send fewer or smaller images per request.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RequestError(413, f"Request body exceeds {max_bytes} bytes; send fewer or smaller images.")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_image(raw: bytes, max_pixels: int, where: str) -> Image.Image:
    """Decode image bytes to RGB, checking the pixel count from the header before decoding any pixel data."""
    try:
        image = Image.open(io.BytesIO(raw))
    except Image.DecompressionBombError as error:
        raise RequestError(413, f"{where}: image is too large to decode safely ({error}); this server accepts at "
                                f"most {max_pixels} pixels per image.") from error
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise RequestError(400, f"{where}: bytes are not an image in a supported format "
                                "(JPEG, PNG, WebP, BMP, GIF, TIFF ...).") from error
    width, height = image.size
    if width * height > max_pixels:
        raise RequestError(413, f"{where}: image is {width}x{height} = {width * height} pixels; this server accepts "
                                f"at most {max_pixels} pixels per image. Downscale it before sending.")
    try:
        return ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise RequestError(400, f"{where}: image data is corrupt or truncated ({error}).") from error
