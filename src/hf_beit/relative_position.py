"""Relative-position bias of BEiT: index tables, unilm's geometric resize, and the bias module.

A bias table has ``(2*Wh - 1) * (2*Ww - 1) + 3`` rows (one per relative offset, dh-major, then the three CLS rows:
cls->token, token->cls, cls->cls) and one column per head.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from scipy.interpolate import make_interp_spline
from torch import nn

from .configuration_beit import _pair

NUM_CLS_ROWS = 3


@functools.lru_cache(maxsize=16)
def relative_position_index(window: tuple[int, int]) -> torch.Tensor:
    """``(N+1, N+1)`` int64 map from (query, key) token pairs to table rows for an ``Wh x Ww`` patch grid (cached)."""
    with torch.inference_mode(False):  # a cached inference tensor would break later training steps
        return build_relative_position_index(window)


def build_relative_position_index(window: tuple[int, int]) -> torch.Tensor:
    """Uncached :func:`relative_position_index` (what ``torch.compile`` traces)."""
    wh, ww = window
    coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")).flatten(1)  # 2, N
    rel = coords[:, :, None] - coords[:, None, :]  # 2, N, N
    patch_rows = (rel[0] + wh - 1) * (2 * ww - 1) + (rel[1] + ww - 1)
    num_offsets = (2 * wh - 1) * (2 * ww - 1)
    index = torch.empty(wh * ww + 1, wh * ww + 1, dtype=torch.long)
    index[1:, 1:] = patch_rows
    index[0, :] = num_offsets  # cls -> token
    index[:, 0] = num_offsets + 1  # token -> cls
    index[0, 0] = num_offsets + 2  # cls -> cls
    return index


def geometric_progression_ratio(src_side: int, dst_side: int) -> float:
    """unilm's bisection on [1.01, 1.5]: q with ``1 + q + ... + q**(src_side//2 - 1) == dst_side // 2``.

    Like the original it returns the last midpoint, so shrinking ends near q = 1.01.
    """
    num_terms, target = src_side // 2, dst_side // 2
    left, right = 1.01, 1.5
    q = (left + right) / 2.0
    while right - left > 1e-6:
        q = (left + right) / 2.0
        if (1.0 - q**num_terms) / (1.0 - q) > target:
            right = q
        else:
            left = q
    return q


def geometric_source_coordinates(src_side: int, dst_side: int) -> np.ndarray:
    """Where unilm places the ``src_side`` stored offsets on the target axis: ``-d[::-1], 0, d``, d = 1, 1+q, ..."""
    q = geometric_progression_ratio(src_side, dst_side)
    positive = np.cumsum(q ** np.arange(src_side // 2))
    return np.concatenate([-positive[::-1], [0.0], positive])


def geometric_resize_matrix(src_side: int, dst_side: int) -> torch.Tensor:
    """``(dst_side, src_side)`` float64 matrix applying unilm's resize along one offset axis.

    unilm fits ``scipy interp2d(kind="cubic")`` per head; for gridded data that is the tensor product of 1-D
    not-a-knot interpolating splines, so the 2-D resize is ``A_h @ grid @ A_w.T`` with these matrices.
    Being linear, it is differentiable and can run at load time or on the fly. A new tensor on every call (over a
    cached array): a cached tensor built while exporting would be a fake tensor.
    """
    return torch.tensor(_geometric_resize_array(src_side, dst_side))  # a copy: callers cannot alter the cache


@functools.lru_cache(maxsize=32)
def _geometric_resize_array(src_side: int, dst_side: int) -> np.ndarray:
    if src_side == dst_side:
        return np.eye(src_side)
    if src_side < 2:
        raise ValueError("Cannot interpolate a relative-position table along an axis of size 1.")
    source = geometric_source_coordinates(src_side, dst_side)
    half = dst_side // 2
    target = np.clip(np.arange(-half, half + 0.1, 1.0), source[0], source[-1])  # FITPACK clamps to its knots
    spline = make_interp_spline(source, np.eye(src_side), k=min(3, src_side - 1))
    return np.ascontiguousarray(spline(target))


def resample_offset_grid(grid: torch.Tensor, dst_sides: tuple[int, int]) -> torch.Tensor:
    """Resize a ``(rows, cols, heads)`` grid of relative-offset biases to ``dst_sides`` (differentiable)."""
    rows = geometric_resize_matrix(grid.shape[0], dst_sides[0]).to(grid.device, grid.dtype)
    cols = geometric_resize_matrix(grid.shape[1], dst_sides[1]).to(grid.device, grid.dtype)
    return torch.einsum("ys,stc,xt->yxc", rows, grid, cols)


def resize_relative_position_table(
    table: torch.Tensor, src_window: tuple[int, int], dst_window: tuple[int, int]
) -> torch.Tensor:
    """Resize a bias table from a ``src_window`` to a ``dst_window`` patch grid the way unilm does.

    The patch-to-patch rows are resampled per head with unilm's geometric-progression bicubic interpolation (a
    linear map, so differentiable); the three CLS rows are kept. The only implementation in hf_beit: used at run
    time by :class:`BeitRelativePositionBias` and at load time by ``retargeting`` (which passes a float64 copy).
    Equal windows return ``table`` itself.
    """
    src_window, dst_window = _pair(src_window), _pair(dst_window)
    if table.ndim != 2:
        raise ValueError(f"Expected a 2-D (num_positions, num_heads) table, got shape {tuple(table.shape)}.")
    src_h, src_w = 2 * src_window[0] - 1, 2 * src_window[1] - 1
    expected = src_h * src_w + NUM_CLS_ROWS
    if table.shape[0] != expected:
        raise ValueError(
            f"Relative-position table has {table.shape[0]} rows but a {src_window[0]}x{src_window[1]} window needs "
            f"{expected}; pass the window the table was trained for."
        )
    if src_window == dst_window:
        return table
    dst_h, dst_w = 2 * dst_window[0] - 1, 2 * dst_window[1] - 1
    resized = resample_offset_grid(table[: src_h * src_w].reshape(src_h, src_w, -1), (dst_h, dst_w))
    return torch.cat([resized.reshape(dst_h * dst_w, -1), table[src_h * src_w :]], dim=0)


class BeitRelativePositionBias(nn.Module):
    """Learned relative-position bias for one attention layer (or shared by all layers).

    ``forward(window)`` returns the ``(heads, N+1, N+1)`` additive attention bias for an input patch grid. A grid
    other than the configured one resizes the table with unilm's geometric interpolation. Without autograd the
    result is cached until the table changes.
    """

    def __init__(self, window_size: tuple[int, int], num_heads: int) -> None:
        super().__init__()
        self.window_size = tuple(window_size)
        num_rows = (2 * window_size[0] - 1) * (2 * window_size[1] - 1) + NUM_CLS_ROWS
        self.relative_position_bias_table = nn.Parameter(torch.zeros(num_rows, num_heads))
        self._cache: dict[tuple, torch.Tensor] = {}

    def forward(self, window: tuple[int, int]) -> torch.Tensor:
        table = self.relative_position_bias_table
        cacheable = not torch.is_grad_enabled() and not torch.compiler.is_compiling()
        key = (tuple(window), table._version, table.data_ptr(), table.dtype, table.device) if cacheable else None
        if key is not None and key in self._cache:
            return self._cache[key]
        table = resize_relative_position_table(table, self.window_size, window)
        build_index = build_relative_position_index if torch.compiler.is_compiling() else relative_position_index
        index = build_index(tuple(window)).to(table.device)
        num_tokens = index.shape[0]
        bias = table[index.reshape(-1)].reshape(num_tokens, num_tokens, -1).permute(2, 0, 1).contiguous()
        if key is not None:
            self._cache.clear()
            self._cache[key] = bias
        return bias
