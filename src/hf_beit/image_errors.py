"""What :func:`hf_beit.image_loading.load_image` raises, and its header-check hook type (no imports of PIL or numpy, so
budgets and command-line parsers can name them cheaply)."""

from __future__ import annotations

from collections.abc import Callable

#: ``check_size(width, height, mode)``: called with an image's header before any pixel is decoded; raises to refuse.
SizeCheck = Callable[[int, int, str], None]


class InvalidImageError(ValueError):
    """The input could not be decoded into a usable image (corrupt, truncated, not an image, or too large)."""


class ImageTooLargeError(InvalidImageError):
    """The image is valid but above a pixel or memory budget; refused from its header, before decoding."""
