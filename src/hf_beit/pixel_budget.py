"""Pixel budget: what one image may cost, decided from its header before any pixel is decoded.

An image costs memory three times: decoded (width x height as stored), resized by the image processor, and as the
float32 pixel values handed to the model. The resize is where a tiny file turns into gigabytes: a 1x20000 PNG of
100 bytes, resized to a short side of 256 (the preprocessing of every converted classification repo), becomes a
256x5120000 image. :class:`PixelBudget` bounds the decoded and the resized size of one image;
:meth:`PixelBudget.cost` returns an :class:`ImageCost` whose byte estimates the HTTP server charges against its
memory budget (per request and across requests in flight).

Estimates are upper bounds of what decoding + preprocessing holds at its peak (measured by the tests: 10 bytes per
pixel for a 12 MP RGB PNG, 21 for RGBA): 4 bytes per stored pixel (Pillow keeps RGB as RGBX), 4 more for an EXIF
rotation, 6 for the RGB array and the contiguous copy the resize makes of a large image, 16 more for a mode other
than RGB (the RGBA copy, white canvas and composite of the RGB conversion), 4 per resized pixel and 12 per output
value triple.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .image_errors import ImageTooLargeError, InvalidImageError, SizeCheck
from .resize_geometry import mmcv_output_size, output_size

__all__ = ["ImageCost", "PixelBudget", "processor_geometry"]

#: ``geometry(height, width) -> ((resized_h, resized_w), (output_h, output_w))``: what preprocessing makes of an image.
Geometry = Callable[[int, int], tuple[tuple[int, int], tuple[int, int]]]

_STORED_BYTES = 4  # Pillow stores every 8-bit mode we accept in at most 4 bytes per pixel
_ROTATION_BYTES = 4
_RGB_COPY_BYTES = 6  # large images are not one memory block: no zero-copy view, an RGB array and a resize copy
_CONVERSION_BYTES = 16
_RESIZED_BYTES = 4
_OUTPUT_BYTES = 12  # three float32 channels


def _size_mapping(value: Any) -> dict[str, int] | None:
    if value is None:
        return None
    if dataclasses.is_dataclass(value):  # transformers' SizeDict
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {key: int(item) for key, item in value.items() if item is not None}
    if isinstance(value, int):
        return {"height": value, "width": value}
    return None


def processor_geometry(processor: Any) -> Geometry:
    """The resize and centre crop of an image processor (``do_resize``/``size``/``resize_mode``/``do_center_crop``/
    ``crop_size``)."""
    size = _size_mapping(getattr(processor, "size", None)) if getattr(processor, "do_resize", False) else None
    crop = _size_mapping(getattr(processor, "crop_size", None)) if getattr(processor, "do_center_crop", False) else None
    resized_size = mmcv_output_size if getattr(processor, "resize_mode", None) == "mmcv" else output_size

    def geometry(height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        resized = resized_size(height, width, size) if size else (height, width)
        output = (crop["height"], crop["width"]) if crop and {"height", "width"} <= crop.keys() else resized
        return resized, output

    return geometry


def _identity(height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
    return (height, width), (height, width)


@dataclass(frozen=True)
class ImageCost:
    """Sizes and peak memory of decoding and preprocessing one image (both orientations considered)."""

    width: int
    height: int
    resized_pixels: int
    output_pixels: int
    work_bytes: int  # held while the image is decoded and preprocessed
    output_bytes: int  # the float32 pixel values, held until the model has run


@dataclass(frozen=True)
class PixelBudget:
    """Per-image limits: ``max_pixels`` as stored (header), ``max_resized_pixels`` after preprocessing's resize."""

    max_pixels: int = 25_000_000
    max_resized_pixels: int = 2048 * 2048

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_resized_pixels"):
            if getattr(self, name) < 1:
                raise ValueError(f"PixelBudget.{name} must be >= 1; got {getattr(self, name)}.")

    def cost(self, width: int, height: int, mode: str = "RGB", geometry: Geometry | None = None,
             what: str = "the image") -> ImageCost:
        """The cost of a ``width x height`` image of PIL ``mode``; raises ``ImageTooLargeError`` above the budget.

        ``geometry`` is the preprocessing (:func:`processor_geometry`); an EXIF rotation may swap the sides, so
        both orientations are evaluated and the larger is charged.
        """
        pixels = width * height
        if width < 1 or height < 1:
            raise ImageTooLargeError(f"{what} is {width}x{height} pixels; an image needs at least one pixel.")
        if pixels > self.max_pixels:
            raise ImageTooLargeError(
                f"{what} is {width}x{height} = {pixels} pixels; at most {self.max_pixels} pixels per image are "
                "accepted. Downscale it first."
            )
        geometry = geometry or _identity
        shapes = [geometry(height, width), geometry(width, height)]
        if min(min(shape[0]) for shape in shapes) < 1:
            raise InvalidImageError(f"{what} is {width}x{height} pixels; preprocessing would resize one of its sides "
                                    "to 0 pixels. Crop it to a less elongated shape first.")
        resized = max(h * w for (h, w), _ in shapes)
        output = max(h * w for _, (h, w) in shapes)
        if resized > self.max_resized_pixels:
            (rh, rw), _ = max(shapes, key=lambda shape: shape[0][0] * shape[0][1])
            raise ImageTooLargeError(
                f"{what} is {width}x{height} pixels; preprocessing would resize it to {rw}x{rh} = {resized} pixels "
                f"and at most {self.max_resized_pixels} resized pixels per image are accepted (an extreme aspect "
                "ratio). Crop it to a less elongated shape first."
            )
        per_pixel = _STORED_BYTES + _ROTATION_BYTES + _RGB_COPY_BYTES + (0 if mode == "RGB" else _CONVERSION_BYTES)
        output_bytes = output * _OUTPUT_BYTES
        work = pixels * per_pixel + resized * _RESIZED_BYTES + output_bytes
        return ImageCost(width, height, resized, output, work, output_bytes)

    def size_check(self, geometry: Geometry | None = None, what: str = "the image",
                   on_cost: Callable[[ImageCost], None] | None = None) -> SizeCheck:
        """A ``check_size`` hook for :func:`hf_beit.image_loading.load_image`; ``on_cost`` receives the cost."""

        def check(width: int, height: int, mode: str) -> None:
            cost = self.cost(width, height, mode, geometry, what)
            if on_cost is not None:
                on_cost(cost)

        return check
