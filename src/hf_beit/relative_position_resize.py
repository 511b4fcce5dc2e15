"""Load-time resizing of BEiT position parameters, following the original unilm/mmseg recipe.

* Relative-position bias tables are resampled with unilm's "geometric-progression" interpolation: the source
  offsets are laid out on a grid whose spacing grows geometrically away from zero, and each head is fitted with
  an interpolating bicubic spline (``RectBivariateSpline(kx=ky=3, s=0)``, which reproduces the removed
  ``scipy.interpolate.interp2d(kind="cubic")`` used by the original code). The extra cls rows are kept.
* Absolute position embeddings are resized bicubically (``align_corners=False``), keeping the CLS row.
* A shared (pre-training) relative table can be copied into every layer, as unilm does when fine-tuning.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .configuration_beit import _pair
from .relative_position import geometric_progression_ratio, geometric_source_coordinates, resample_offset_grid

__all__ = [
    "LAYER_TABLE_KEY",
    "SHARED_TABLE_KEY",
    "expand_shared_relative_position_bias",
    "geometric_progression_ratio",
    "geometric_source_coordinates",
    "resample_offset_grid",
    "resize_absolute_position_embeddings",
    "resize_relative_position_bias_table",
]

SHARED_TABLE_KEY = "beit.encoder.relative_position_bias.relative_position_bias_table"
LAYER_TABLE_KEY = "beit.encoder.layer.{}.attention.attention.relative_position_bias.relative_position_bias_table"



def resize_relative_position_bias_table(
    table: Tensor,
    src_window: tuple[int, int],
    dst_window: tuple[int, int],
    num_extra_tokens: int = 3,
) -> Tensor:
    """Resize a ``((2Wh-1)*(2Ww-1) + num_extra_tokens, num_heads)`` relative-position bias table.

    ``src_window``/``dst_window`` are patch grids ``(Wh, Ww)`` (an int means square). Patch-to-patch rows are
    resampled per head with unilm's geometric-progression bicubic interpolation; the trailing ``num_extra_tokens``
    rows (cls->token, token->cls, cls->cls) are copied unchanged. Returns a new tensor on the same device and dtype;
    equal windows return an unchanged copy.
    """
    src_h, src_w = _pair(src_window)
    dst_h, dst_w = _pair(dst_window)
    if table.ndim != 2:
        raise ValueError(f"Expected a 2-D (num_positions, num_heads) table, got shape {tuple(table.shape)}.")
    src_sides = (2 * src_h - 1, 2 * src_w - 1)
    dst_sides = (2 * dst_h - 1, 2 * dst_w - 1)
    expected_rows = src_sides[0] * src_sides[1] + num_extra_tokens
    if table.shape[0] != expected_rows:
        raise ValueError(
            f"Table has {table.shape[0]} rows but a {src_h}x{src_w} window with {num_extra_tokens} extra tokens "
            f"needs {expected_rows}; pass the window the table was trained for."
        )
    if min(src_sides + dst_sides) < 2:
        raise ValueError("Cannot interpolate a relative-position table for a window of size 1.")
    if src_sides == dst_sides:
        return table.clone()

    num_patch_rows = src_sides[0] * src_sides[1]
    patch_rows = table[:num_patch_rows].detach().to(torch.float64).reshape(*src_sides, -1)
    resized = resample_offset_grid(patch_rows, dst_sides).reshape(-1, table.shape[1]).to(table.dtype)
    return torch.cat([resized, table[num_patch_rows:].detach().clone()], dim=0)


def resize_absolute_position_embeddings(
    pos_embed: Tensor,
    src_grid: int | tuple[int, int],
    dst_grid: int | tuple[int, int],
    num_extra_tokens: int = 1,
) -> Tensor:
    """Resize ``(1, extra + Hs*Ws, D)`` (or ``(extra + Hs*Ws, D)``) absolute embeddings to a ``dst_grid`` patch grid.

    Bicubic, ``align_corners=False``; the leading CLS row(s) are kept, as in unilm's fine-tuning loader.
    """
    src_h, src_w = _pair(src_grid)
    dst_h, dst_w = _pair(dst_grid)
    squeeze = pos_embed.ndim == 2
    embed = pos_embed.unsqueeze(0) if squeeze else pos_embed
    if embed.ndim != 3 or embed.shape[1] != num_extra_tokens + src_h * src_w:
        raise ValueError(
            f"Position embeddings of shape {tuple(pos_embed.shape)} do not match a {src_h}x{src_w} grid with "
            f"{num_extra_tokens} extra token(s)."
        )
    if (src_h, src_w) == (dst_h, dst_w):
        return pos_embed.clone()
    extra, patches = embed[:, :num_extra_tokens], embed[:, num_extra_tokens:]
    dim = embed.shape[-1]
    grid = patches.reshape(embed.shape[0], src_h, src_w, dim).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(dst_h, dst_w), mode="bicubic", align_corners=False)
    patches = grid.permute(0, 2, 3, 1).reshape(embed.shape[0], dst_h * dst_w, dim).to(embed.dtype)
    result = torch.cat([extra, patches], dim=1)
    return result.squeeze(0) if squeeze else result


def expand_shared_relative_position_bias(
    state_dict: dict,
    num_layers: int,
    shared_key: str = SHARED_TABLE_KEY,
    layer_key_template: str = LAYER_TABLE_KEY,
) -> dict:
    """Return a copy of ``state_dict`` where the shared table is cloned into every layer and the shared key removed.

    Defaults use transformers' classic names; pass unilm's (``rel_pos_bias.relative_position_bias_table`` and
    ``blocks.{}.attn.relative_position_bias_table``) to expand an original checkpoint. As in unilm, the copies
    replace any per-layer table. Without a shared table the dict is returned unchanged (as a copy).
    """
    expanded = dict(state_dict)
    shared = expanded.pop(shared_key, None)
    if shared is None:
        return expanded
    for layer in range(num_layers):
        expanded[layer_key_template.format(layer)] = shared.clone()
    return expanded
