"""Inputs of ``BeitImageProcessor``: what counts as one image / one label map, and their tensors.

Images (PIL, numpy, torch, or a local file path) become ``(C, H, W)`` tensors that are, where possible, views of the
decoded buffer (no copy). Label maps become ``(H, W)`` tensors of class ids. Written here, not taken from
transformers' processing backends, so the processor accepts the same inputs on every transformers version.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch
from PIL import Image

from .image_kernels import to_rgb
from .image_loading import load_image, pil_padded_rgb_view, pil_to_rgb_array, sixteen_bit_to_uint8

__all__ = ["flatten_images", "flatten_label_maps", "image_tensor", "label_map_tensor"]

_CHANNEL_COUNTS = (1, 3, 4)
_CHANNELS_FIRST, _CHANNELS_LAST = "channels_first", "channels_last"  # transformers' ChannelDimension values
_READ_ONLY_WARNING_SILENCED = False


def _is_array(item: Any) -> bool:
    return isinstance(item, (np.ndarray, torch.Tensor))


def _flatten(items: Any, single_ndims: tuple[int, ...], what: str) -> list[Any]:
    """A flat list of single inputs: arrays with ``ndim`` in ``single_ndims`` are one input, one more dim a batch."""
    if isinstance(items, (list, tuple)):
        return [single for item in items for single in _flatten(item, single_ndims, what)]
    if isinstance(items, (Image.Image, str, os.PathLike)):
        return [items]
    if _is_array(items):
        if items.ndim in single_ndims:
            return [items]
        if items.ndim == max(single_ndims) + 1:
            return list(items)
        raise ValueError(
            f"Expected {what} as arrays of {' or '.join(map(str, single_ndims))} dimensions (or a batch with one "
            f"more), got shape {tuple(items.shape)}."
        )
    raise TypeError(
        f"Expected {what} as PIL images, numpy arrays, torch tensors or file paths (or a list of them), got "
        f"{type(items).__name__}."
    )


def flatten_images(images: Any) -> list[Any]:
    """One entry per image: a PIL image, a path, a ``(H, W)`` / ``(H, W, C)`` / ``(C, H, W)`` array; 4-D = batch."""
    if images is None:
        raise ValueError("No images given: pass a PIL image, an array, a tensor or a list of them.")
    flat = _flatten(images, (2, 3), "images")
    if not flat:
        raise ValueError("Got an empty list of images.")
    return flat


def flatten_label_maps(segmentation_maps: Any) -> list[Any]:
    """One entry per label map: a PIL image or a ``(H, W)`` array; a 3-D array is a batch ``(N, H, W)``."""
    return _flatten(segmentation_maps, (2,), "segmentation maps")


def _tensor_from_numpy(array: np.ndarray) -> torch.Tensor:
    """``torch.from_numpy`` without a copy, also for PIL's read-only buffers (the pipeline never writes into them)."""
    global _READ_ONLY_WARNING_SILENCED
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if any(stride < 0 for stride in array.strides):
        array = np.ascontiguousarray(array)
    if array.flags.writeable or _READ_ONLY_WARNING_SILENCED:
        return torch.from_numpy(array)
    # torch warns once per process about read-only arrays; swallow that single warning on the first call.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        tensor = torch.from_numpy(array)
    _READ_ONLY_WARNING_SILENCED = True
    return tensor


def _array_tensor(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(image, np.ndarray):
        if image.dtype == np.uint16:
            image = sixteen_bit_to_uint8(image)
        return _tensor_from_numpy(image)
    if image.dtype == torch.uint16:
        return torch.from_numpy(sixteen_bit_to_uint8(image.cpu().numpy()))
    return image


def _channels_first(tensor: torch.Tensor, input_data_format: Any) -> torch.Tensor:
    """``(C, H, W)`` from a 3-D tensor in the given or inferred layout (channels first when both ends could be)."""
    if input_data_format is None:
        if tensor.shape[0] in _CHANNEL_COUNTS:
            return tensor
        if tensor.shape[-1] in _CHANNEL_COUNTS:
            return tensor.permute(2, 0, 1)
        raise ValueError(
            f"Cannot tell the channel dimension of an image of shape {tuple(tensor.shape)}: neither the first nor the "
            "last dimension has 1, 3 or 4 channels. Pass input_data_format='channels_first' or 'channels_last'."
        )
    if input_data_format == _CHANNELS_FIRST:
        return tensor
    if input_data_format == _CHANNELS_LAST:
        return tensor.permute(2, 0, 1)
    raise ValueError(f"input_data_format must be 'channels_first' or 'channels_last', got {input_data_format!r}.")


def image_tensor(image: Any, do_convert_rgb: bool, input_data_format: Any = None) -> torch.Tensor:
    """One image as a ``(C, H, W)`` tensor; for PIL/HWC inputs a view of the buffer (no copy) where possible.

    With ``do_convert_rgb`` PIL images of any mode go through ``pil_to_rgb_array`` and arrays get 3 channels
    (greyscale repeated, RGBA composited onto white); a file path is decoded with ``load_image``.
    """
    if isinstance(image, (str, os.PathLike)):
        if str(image).startswith(("http://", "https://")):
            raise ValueError(
                f"BeitImageProcessor does not download images ({image!r}); fetch the file first and pass its path, "
                "bytes decoded with hf_beit.image_loading.load_image, or a PIL image."
            )
        image = load_image(image)
    if isinstance(image, Image.Image):
        padded = pil_padded_rgb_view(image) if do_convert_rgb else None
        if padded is not None:  # zero-copy RGBX memory; the padding channel is dropped after resizing
            return _tensor_from_numpy(padded).permute(2, 0, 1)[:3]
        tensor = _tensor_from_numpy(pil_to_rgb_array(image) if do_convert_rgb else np.asarray(image))
        return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    tensor = _array_tensor(image)
    tensor = tensor[None] if tensor.ndim == 2 else _channels_first(tensor, input_data_format)
    return to_rgb(tensor) if do_convert_rgb else tensor


def label_map_tensor(segmentation_map: Any) -> torch.Tensor:
    """A ``(H, W)`` tensor of the class ids stored in ``segmentation_map`` (palette indices for mode ``P``)."""
    if isinstance(segmentation_map, Image.Image):
        segmentation_map = np.asarray(segmentation_map)
    if isinstance(segmentation_map, np.ndarray):
        segmentation_map = _tensor_from_numpy(segmentation_map)
    if not isinstance(segmentation_map, torch.Tensor):
        raise TypeError(f"Expected a segmentation map as PIL image, array or tensor, got {type(segmentation_map)}.")
    if segmentation_map.ndim == 3 and 1 in (segmentation_map.shape[0], segmentation_map.shape[-1]):
        segmentation_map = segmentation_map.squeeze(0) if segmentation_map.shape[0] == 1 else segmentation_map[..., 0]
    if segmentation_map.ndim != 2:
        raise ValueError(
            f"A segmentation map must be a single-channel (H, W) array of class ids, got shape "
            f"{tuple(segmentation_map.shape)}. Convert colour-coded masks to class ids first."
        )
    if segmentation_map.dtype != torch.uint8:  # uint8 keeps the fast nearest kernel; the rest becomes int64
        segmentation_map = segmentation_map.to(torch.int64)
    return segmentation_map
