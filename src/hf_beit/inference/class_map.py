"""Class-id maps from low-resolution logits: bilinear upsampling + arg-max in bounded memory.

Upsampling ``(C, h, w)`` logits to a large original image at once needs ``C * H * W`` floats (150 classes at 6000x4000:
14 GB). Above ``max_bytes`` the map is computed in bands of output rows with the same bilinear weights as
``F.interpolate(mode="bilinear", align_corners=False)``: rows are blended by hand, columns by 1-D linear interpolation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_MAX_BYTES = 256 * 1024 * 1024


def _row_weights(start: int, stop: int, in_rows: int, out_rows: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source rows and weights of output rows ``start..stop-1`` (PyTorch's half-pixel rule, clamped at 0)."""
    source = ((torch.arange(start, stop, dtype=torch.float32) + 0.5) * (in_rows / out_rows) - 0.5).clamp(min=0)
    lower = source.floor().long().clamp(max=in_rows - 1)
    upper = (lower + 1).clamp(max=in_rows - 1)
    return lower, upper, source - lower


def upsampled_class_ids(logits: torch.Tensor, height: int, width: int,
                        max_bytes: int = DEFAULT_MAX_BYTES) -> torch.Tensor:
    """``argmax`` over classes of ``logits`` ``(1, C, h, w)`` resized bilinearly to ``(height, width)`` (int64)."""
    channels = logits.shape[1]
    if channels * height * width * 4 <= max_bytes:
        upsampled = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        return upsampled[0].argmax(dim=0)
    source = logits[0].float()
    rows = max(1, max_bytes // (2 * channels * max(width, source.shape[2]) * 4))
    class_ids = torch.empty(height, width, dtype=torch.int64, device=logits.device)
    for top in range(0, height, rows):
        stop = min(top + rows, height)
        lower, upper, weight = _row_weights(top, stop, source.shape[1], height)
        weight = weight.to(source.device)[:, None]
        band = source[:, lower] * (1 - weight) + source[:, upper] * weight  # (C, band, w)
        band = F.interpolate(band.permute(1, 0, 2), size=width, mode="linear", align_corners=False)
        class_ids[top:stop] = band.argmax(dim=1)
    return class_ids
