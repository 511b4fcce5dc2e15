"""Robust image decoding and PIL-mode conversion to 8-bit RGB.

``load_image`` turns a path, raw bytes or a binary file object into a fully decoded PIL image and raises
``InvalidImageError`` (a ``ValueError``) for anything that is not a usable image: empty input, unknown formats,
corrupt or truncated data, and ``ImageTooLargeError`` for images above a pixel budget (decompression bombs). It is
the one decoder of the package: the image processor (file paths), ``hf-beit predict`` / ``segment``, the training
data check and the HTTP server all decode through it. ``check_size`` lets a caller refuse an image from its header
(size and mode) before any pixel is decoded, e.g. with :mod:`hf_beit.pixel_budget`.

``pil_to_rgb_array`` converts a PIL image of any mode to an ``(H, W, 3)`` uint8 array the way transformers'
processors do (transparency composited onto white, everything else through ``Image.convert("RGB")``), with one
deliberate exception: 16-bit greyscale (``I;16*`` modes, e.g. 16-bit PNG/TIFF) is scaled to 8 bits
(``round(v / 257)``) instead of being clipped at 255, which turns almost every such image pure white.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import warnings
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps

from .image_errors import ImageTooLargeError, InvalidImageError, SizeCheck

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageTooLargeError",
    "InvalidImageError",
    "as_rgb",
    "load_image",
    "pil_padded_rgb_view",
    "pil_to_rgb_array",
    "sixteen_bit_to_uint8",
]

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO
#: ``check_size(width, height, mode)``: raise (e.g. ``ImageTooLargeError``) to refuse an image before decoding it.

#: Default pixel budget of ``load_image``: Pillow's own decompression-bomb threshold (about 89.5 megapixels).
DEFAULT_MAX_PIXELS = 89_478_485

#: File extensions taken as images wherever a folder is scanned (prediction, training and pre-training data).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def _describe(source: ImageSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"file {os.fspath(source)!r}"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"{len(source)} bytes of input"
    return f"stream {getattr(source, 'name', type(source).__name__)!r}"


def _open_stream(source: ImageSource) -> BinaryIO:
    if isinstance(source, (str, os.PathLike)):
        return open(source, "rb")  # FileNotFoundError / IsADirectoryError propagate unchanged: they are not bad images
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise InvalidImageError("Cannot decode an image from empty input (0 bytes). Pass the image file's bytes.")
        return io.BytesIO(bytes(source))
    if hasattr(source, "read"):
        return source
    raise TypeError(f"load_image expects a path, bytes or a binary file object, got {type(source).__name__}.")


@contextlib.contextmanager
def _decoding_errors(what: str) -> Iterator[None]:
    """Turn whatever Pillow raises for bad data into ``InvalidImageError`` / ``ImageTooLargeError``."""
    try:
        yield
    except InvalidImageError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(
            f"The image in {what} is too large to decode safely: it exceeds Pillow's decompression-bomb limit "
            f"({error}). Raise PIL.Image.MAX_IMAGE_PIXELS if the image is trusted."
        ) from error
    except Image.UnidentifiedImageError as error:
        raise InvalidImageError(
            f"Could not identify an image format in {what}: it is not an image file Pillow can read, or its "
            "header is corrupt."
        ) from error
    except Exception as error:  # Pillow's decoders raise OSError, SyntaxError, ValueError, EOFError, struct.error ...
        raise InvalidImageError(
            f"The image in {what} is corrupt or truncated and could not be decoded ({type(error).__name__}: {error})."
        ) from error


def load_image(
    source: ImageSource,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    convert_to_rgb: bool = False,
    check_size: SizeCheck | None = None,
) -> Image.Image:
    """Decode ``source`` (path, bytes or binary file object) into a fully loaded PIL image.

    The EXIF orientation is applied (as transformers' ``load_image`` does). The pixel mode is kept unless
    ``convert_to_rgb`` is set, in which case the result is an 8-bit RGB image converted with ``pil_to_rgb_array``.

    Args:
        source: a file path, the encoded bytes, or a binary file object.
        max_pixels: reject images with more than this many pixels before decoding them (``None`` = no own limit;
            Pillow still refuses images above twice ``PIL.Image.MAX_IMAGE_PIXELS``).
        convert_to_rgb: return an RGB image instead of the stored mode.
        check_size: called with the header's ``(width, height, mode)`` before decoding (after the ``max_pixels``
            check); it refuses an image by raising, e.g. ``ImageTooLargeError``; what it raises propagates unchanged.

    Raises:
        InvalidImageError: empty, unrecognised, corrupt or truncated data.
        ImageTooLargeError: an image above ``max_pixels`` (or refused by ``check_size``).
    """
    what = _describe(source)
    stream = _open_stream(source)
    try:
        with _decoding_errors(what), warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own budget below
            image = Image.open(stream)
        width, height = image.size
        if max_pixels is not None and width * height > max_pixels:
            raise ImageTooLargeError(
                f"The image in {what} is {width}x{height} = {width * height} pixels; at most {max_pixels} pixels "
                "per image are accepted (possible decompression bomb). Pass a larger max_pixels if the image is "
                "trusted."
            )
        if check_size is not None:
            check_size(width, height, image.mode)  # what it raises propagates unchanged
        with _decoding_errors(what):
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # no copy of upright images
    finally:
        if isinstance(source, (str, os.PathLike)):
            stream.close()
    return as_rgb(image) if convert_to_rgb else image


def as_rgb(image: Image.Image) -> Image.Image:
    """``image`` in RGB mode, converted as :func:`pil_to_rgb_array` does (``image`` itself if it already is)."""
    return image if image.mode == "RGB" else Image.fromarray(pil_to_rgb_array(image))


def sixteen_bit_to_uint8(array: np.ndarray) -> np.ndarray:
    """Map 16-bit values 0..65535 to 0..255 by ``round(v / 257)`` (exact for 8-bit data stored as ``v * 257``)."""
    wide = np.clip(array, 0, 65535).astype(np.uint32)
    return ((wide + 128) // 257).astype(np.uint8)


@functools.cache
def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError:
        return None
    return pyarrow


def pil_padded_rgb_view(image: Image.Image) -> np.ndarray | None:
    """Zero-copy read-only ``(H, W, 4)`` view of an RGB image's pixel memory (RGB + one padding byte), or ``None``.

    Pillow stores RGB pixels as 4 bytes; it exports them without a copy through the Arrow C data interface, read here
    with pyarrow (a dependency of ``datasets``). ``None`` when that is unavailable: no pyarrow, a mode other than RGB,
    a ``transparency`` entry, or an image too large for one memory block. Valid while ``image`` is alive.
    """
    if image.mode != "RGB" or image.info.get("transparency") is not None:
        return None
    pyarrow = _pyarrow()
    if pyarrow is None:
        return None
    try:
        flat = pyarrow.array(image).flatten().to_numpy(zero_copy_only=True)
    except (TypeError, ValueError, NotImplementedError):  # pyarrow.ArrowException derives from these
        return None
    if flat.dtype != np.uint8 or flat.size != image.width * image.height * 4:
        return None
    return flat.reshape(image.height, image.width, 4)


def pil_to_rgb_array(image: Image.Image) -> np.ndarray:
    """Return ``image`` as an ``(H, W, 3)`` uint8 array (read-only when no conversion was needed).

    Transparency (an alpha band, or a ``transparency`` entry of palette/greyscale images) is composited onto a
    white background, as transformers does; 16-bit greyscale is scaled to 8 bits (see module docstring); all
    other modes (L, P, 1, CMYK, YCbCr, I, F, ...) go through ``Image.convert("RGB")``.
    """
    mode = image.mode
    if mode == "RGB" and image.info.get("transparency") is None:
        return np.asarray(image)
    if mode in _SIXTEEN_BIT_MODES:
        grey = sixteen_bit_to_uint8(np.asarray(image))
        return np.repeat(grey[:, :, None], 3, axis=2)
    try:
        if "A" in image.getbands() or image.info.get("transparency") is not None:
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
        return np.asarray(image.convert("RGB"))
    except ValueError as error:
        raise InvalidImageError(
            f"Cannot convert a PIL image of mode {mode!r} to RGB ({error}). Convert it to 'RGB' or 'RGBA' first."
        ) from error
