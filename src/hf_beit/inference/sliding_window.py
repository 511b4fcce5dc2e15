"""Sliding-window semantic-segmentation inference, numerically the same scheme as mmseg's ``slide_inference``.

For every window the model's logits are bilinearly resized (``align_corners=False``) to the window size, added into
a zero canvas of the input size (equivalent to zero-padding each window's logits to the full size) and a count
matrix records how many windows cover each pixel; the sum is divided by the count. Window origins are
``min(i * stride, size - crop)`` for ``i = 0 .. ceil((size - crop) / stride)``, so the last window touches the border;
an input smaller than the crop is processed as one window of its own size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


def to_pair(value: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    """``(height, width)`` from an int or a pair, checked to be positive ints."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair of positive ints (height, width); got {value!r}.")
    return pair  # type: ignore[return-value]


def window_starts(size: int, crop: int, stride: int) -> list[int]:
    """Origins of the windows along one axis of length ``size`` (mmseg's grid, last window clamped to the border)."""
    num_windows = max(size - crop + stride - 1, 0) // stride + 1
    return [max(min(i * stride + crop, size) - crop, 0) for i in range(num_windows)]


def window_logits(model: torch.nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """Segmentation logits of ``pixel_values`` resized to its own height and width (mmseg ``encode_decode``)."""
    logits = model(pixel_values=pixel_values, interpolate_pos_encoding=True).logits
    return F.interpolate(logits.float(), size=pixel_values.shape[-2:], mode="bilinear", align_corners=False)


@torch.no_grad()
def sliding_window_logits(
    model: torch.nn.Module,
    pixel_values: torch.Tensor,
    crop_size: int | tuple[int, int],
    stride: int | tuple[int, int],
    window_batch_size: int = 4,
    progress: bool = False,
) -> torch.Tensor:
    """Average the logits of overlapping ``crop_size`` windows placed every ``stride`` pixels.

    Args:
        model: a segmentation model returning ``.logits`` of shape ``(B, num_labels, h', w')``.
        pixel_values: normalised images ``(B, C, H, W)``.
        crop_size, stride: window size and step, an int or ``(height, width)``; the stride may not exceed the crop
            (otherwise pixels between windows would get no prediction).
        window_batch_size: windows run through the model together (all windows of one input have the same size).
        progress: show a tqdm bar over window batches.

    Returns:
        float32 logits ``(B, num_labels, H, W)``.
    """
    if pixel_values.ndim != 4:
        raise ValueError(
            f"pixel_values must be (batch, channels, height, width); got shape {tuple(pixel_values.shape)}."
        )
    crop_h, crop_w = to_pair(crop_size, "crop_size")
    stride_h, stride_w = to_pair(stride, "stride")
    if stride_h > crop_h or stride_w > crop_w:
        raise ValueError(f"stride {(stride_h, stride_w)} exceeds crop_size {(crop_h, crop_w)}; some pixels would be "
                         "covered by no window. Use a stride <= crop size (mmseg uses about 2/3 of the crop).")
    if window_batch_size < 1:
        raise ValueError(f"window_batch_size must be >= 1; got {window_batch_size}.")
    batch, _, height, width = pixel_values.shape
    win_h, win_w = min(crop_h, height), min(crop_w, width)
    origins = [(y, x) for y in window_starts(height, crop_h, stride_h) for x in window_starts(width, crop_w, stride_w)]
    chunks = [origins[i:i + window_batch_size] for i in range(0, len(origins), window_batch_size)]
    summed: torch.Tensor | None = None
    count = torch.zeros(1, 1, height, width, device=pixel_values.device)
    for chunk in tqdm(chunks, desc="windows", unit="batch", disable=not progress, leave=False):
        crops = torch.cat([pixel_values[:, :, y:y + win_h, x:x + win_w] for y, x in chunk])
        logits = window_logits(model, crops)
        if summed is None:
            summed = logits.new_zeros(batch, logits.shape[1], height, width)
        for i, (y, x) in enumerate(chunk):
            summed[:, :, y:y + win_h, x:x + win_w] += logits[i * batch:(i + 1) * batch]
            count[:, :, y:y + win_h, x:x + win_w] += 1
    return summed / count
