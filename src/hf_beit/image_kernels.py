"""Tensor kernels of the fast BEiT preprocessing path (no PIL, no float64, no full-size copies).

The processor keeps images as uint8 channel-first *views* of the decoded HWC buffer, so torch's antialiased uint8
resize (AVX2 kernels working on channels-last data) runs without a layout change; crops are views; each image is
copied once (uint8 -> float32, to contiguous) into a preallocated batch and rescaled + normalised in place, in
cache-sized blocks of rows.

Everything here is torch/torchvision only (the output geometry is :mod:`hf_beit.resize_geometry`): the PIL-resample
-> torchvision interpolation mapping and the RGB conversion of arrays are written here rather than taken from
transformers' processing backends, so the processor computes the same thing on every transformers version. The tests
check each against transformers' own processor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchvision.transforms.v2 import functional as tvF

__all__ = [
    "affine_coefficients",
    "center_crop",
    "interpolation_mode",
    "padded_rgb",
    "rescale_and_normalize_into_batch",
    "resize",
    "to_rgb",
]

CROP_ROUNDINGS = ("floor", "round")
#: How images are resized: transformers' geometry with antialiased kernels, or mmcv's (mmseg's test pipeline):
#: keep-ratio sizes rounded to nearest and OpenCV-style bilinear without antialiasing.
RESIZE_MODES = ("transformers", "mmcv")
_GRAIN_SIZE = 32768  # at::internal::GRAIN_SIZE: elementwise ops on fewer elements run on the calling thread


_InterpolationMode = tvF.InterpolationMode
# PIL's resampling filters by their integer ids (PIL.Image.Resampling / transformers' PILImageResampling) -> the
# torchvision tensor kernels. NEAREST maps to NEAREST_EXACT, the PIL/OpenCV-consistent nearest neighbour. BOX (4) and
# HAMMING (5) have no tensor kernel.
_PIL_FILTERS = {
    0: _InterpolationMode.NEAREST_EXACT,
    1: _InterpolationMode.LANCZOS,
    2: _InterpolationMode.BILINEAR,
    3: _InterpolationMode.BICUBIC,
}


def interpolation_mode(resample: Any) -> tvF.InterpolationMode:
    """A torchvision ``InterpolationMode`` for a PIL resampling filter id (0-3), or a mode passed through."""
    if resample is None:
        return _InterpolationMode.BILINEAR
    if isinstance(resample, _InterpolationMode):
        return resample
    try:
        return _PIL_FILTERS[int(resample)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"resample must be NEAREST (0), LANCZOS (1), BILINEAR (2) or BICUBIC (3) (PIL.Image.Resampling) or a "
            f"torchvision InterpolationMode, got {resample!r}; BOX and HAMMING have no torchvision tensor kernel."
        ) from None


def resize(
    image: torch.Tensor, height: int, width: int, mode: tvF.InterpolationMode, antialias: bool = True
) -> torch.Tensor:
    """torchvision resize of a ``(C, H, W)`` image (antialiased unless asked otherwise, as OpenCV does not antialias);
    RGBX views are resized with their padding byte."""
    padded = padded_rgb(image)
    if padded is not None:
        return tvF.resize(padded, [height, width], interpolation=mode, antialias=antialias)[:3]
    return tvF.resize(image, [height, width], interpolation=mode, antialias=antialias)


def to_rgb(image: torch.Tensor) -> torch.Tensor:
    """``(C, H, W)`` -> 3 channels: greyscale repeated, RGBA composited onto white (float math, as torchvision's
    ``to_dtype`` scales), anything else unchanged. Float RGBA images must hold values in [0, 1]."""
    channels = image.shape[0]
    if channels == 1:
        return image.expand(3, -1, -1)
    if channels != 4:
        return image
    if image.is_floating_point() and (image.min() < 0.0 or image.max() > 1.0):
        raise ValueError(
            f"A floating-point RGBA image must hold values in [0, 1] to be composited onto white, got "
            f"[{image.min().item()}, {image.max().item()}]. Pass uint8 data or rescale it first."
        )
    unit = tvF.to_dtype(image, torch.float32, scale=True)
    color, alpha = unit[:3], unit[3:]
    return tvF.to_dtype(color * alpha + (1 - alpha), image.dtype, scale=True)


def _crop_offset(excess: int, rounding: str) -> int:
    # "floor": transformers' centre crop; "round": torchvision's CenterCrop (Python round, half to even).
    return excess // 2 if rounding == "floor" else round(excess / 2.0)


def center_crop(image: torch.Tensor, crop_height: int, crop_width: int, rounding: str = "floor") -> torch.Tensor:
    """Crop the centre ``crop_height x crop_width`` of ``image`` (``(..., H, W)``), zero-padding smaller images.

    ``rounding`` decides the offset when the excess is odd: ``"floor"`` as transformers' processors,
    ``"round"`` as ``torchvision.transforms.CenterCrop`` (which unilm's evaluation uses).
    """
    if rounding not in CROP_ROUNDINGS:
        raise ValueError(f"crop_rounding must be one of {CROP_ROUNDINGS}, got {rounding!r}.")
    height, width = image.shape[-2:]
    if crop_height > height or crop_width > width:
        pad_w, pad_h = max(crop_width - width, 0), max(crop_height - height, 0)
        padding = [pad_w // 2, pad_h // 2, (pad_w + 1) // 2, (pad_h + 1) // 2]  # left, top, right, bottom
        image = tvF.pad(image, padding, fill=0)
        height, width = image.shape[-2:]
    top = _crop_offset(height - crop_height, rounding)
    left = _crop_offset(width - crop_width, rounding)
    return image[..., top : top + crop_height, left : left + crop_width]


def padded_rgb(image: torch.Tensor) -> torch.Tensor | None:
    """The 4-channel view behind a ``(3, H, W)`` uint8 view of RGBX memory (pixel stride 4), else ``None``.

    Resizing the 4 channels and dropping the padding afterwards is as fast as resizing packed RGB, while resizing
    the strided 3-channel view directly is ~4x slower (measured with torch's antialiased uint8 kernels).
    """
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        return None
    height, width = image.shape[1:]
    if image.stride() != (1, 4 * width, 4):
        return None
    if image.untyped_storage().nbytes() < image.storage_offset() + 4 * height * width:
        return None
    return image.as_strided((4, height, width), (1, 4 * width, 4))


def _per_channel(value: float | Sequence[float], num_channels: int, name: str) -> torch.Tensor:
    values = torch.as_tensor(value, dtype=torch.float64).flatten()
    if values.numel() == 1:
        values = values.expand(num_channels)
    if values.numel() != num_channels:
        raise ValueError(
            f"{name} has {values.numel()} values but the images have {num_channels} channel(s). Pass one value per "
            "channel, or keep do_convert_rgb=True so that every image is converted to 3-channel RGB."
        )
    return values


def affine_coefficients(
    num_channels: int,
    do_rescale: bool,
    rescale_factor: float,
    do_normalize: bool,
    image_mean: float | Sequence[float] | None,
    image_std: float | Sequence[float] | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(scale, bias)`` (float32, shape ``(C, 1, 1)``) with ``out = pixel * scale + bias``.

    Equals rescaling by ``rescale_factor`` followed by ``(x - mean) / std``; computed in float64, stored in float32.
    """
    scale = torch.full((num_channels,), float(rescale_factor) if do_rescale else 1.0, dtype=torch.float64)
    bias = torch.zeros(num_channels, dtype=torch.float64)
    if do_normalize:
        mean = _per_channel(image_mean, num_channels, "image_mean")
        std = _per_channel(image_std, num_channels, "image_std")
        scale, bias = scale / std, -mean / std
    return scale.float().view(-1, 1, 1), bias.float().view(-1, 1, 1)


def rescale_and_normalize_into_batch(
    images: list[torch.Tensor],
    do_rescale: bool,
    rescale_factor: float,
    do_normalize: bool,
    image_mean: float | Sequence[float] | None,
    image_std: float | Sequence[float] | None,
) -> torch.Tensor | list[torch.Tensor]:
    """Rescale + normalise ``(C, H, W)`` images into one contiguous float32 batch (or a list of images
    when their shapes differ). With neither step enabled the images keep their dtype, as in transformers."""
    if not images:
        return []
    same_shape = all(image.shape == images[0].shape for image in images)
    if not (do_rescale or do_normalize):
        return torch.stack(images) if same_shape else [image.contiguous() for image in images]
    # Per image and per block of rows: copy (uint8 -> float32, any layout -> contiguous), then an in-place affine
    # while the block is in cache. Blocks stay below torch's parallelisation grain (32768 elements), so these small
    # ops run inline instead of waking the intra-op thread pool: on a loaded machine each parallel region can wait
    # milliseconds for a descheduled thread (measured: 150k-element copy 0.25 ms in blocks vs 1-16 ms in one op).
    # A single op mixing uint8 channels-last input and float32 output is also avoided: it hits a slow path (~30 ms).
    if same_shape:
        outputs = torch.empty((len(images), *images[0].shape), dtype=torch.float32)
    else:
        outputs = [torch.empty(image.shape, dtype=torch.float32) for image in images]
    coefficients: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for target, image in zip(outputs, images):
        channels, height, width = image.shape
        if channels not in coefficients:
            coefficients[channels] = affine_coefficients(
                channels, do_rescale, rescale_factor, do_normalize, image_mean, image_std
            )
        scale, bias = coefficients[channels]
        rows = max(1, (_GRAIN_SIZE - 1) // (channels * width))
        for top in range(0, height, rows):
            block = target[:, top : top + rows]
            block.copy_(image[:, top : top + rows])
            block.mul_(scale).add_(bias)
    return outputs
