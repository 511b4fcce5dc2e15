"""The one relative-table resize (unilm's geometric-progression bicubic) and the absolute pos-embed resize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.interpolate import CubicSpline

from hf_beit.modeling_beit import resize_absolute_position_embeddings
from hf_beit.relative_position import (
    geometric_progression_ratio,
    geometric_source_coordinates,
    resize_relative_position_table,
)


@pytest.mark.parametrize(
    ("resolution", "ratio", "outermost"), [(384, 1.090307, 22.9999), (512, 1.134918, 31.0002), (640, 1.168504, 39.0001)]
)
def test_ratio_matches_published_values(resolution, ratio, outermost):
    dst_side = 2 * (resolution // 16) - 1
    assert geometric_progression_ratio(27, dst_side) == pytest.approx(ratio, abs=1e-6)
    coords = geometric_source_coordinates(27, dst_side)
    assert len(coords) == 27 and coords[13] == 0.0 and coords[14] == 1.0
    assert coords[-1] == pytest.approx(outermost, abs=1e-4)
    np.testing.assert_allclose(coords, -coords[::-1])


def _separable_not_a_knot(grid: np.ndarray, src: tuple, dst: tuple) -> np.ndarray:
    """Independent reference: 1-D not-a-knot cubic splines along each axis (clamped to the source range)."""
    (src_y, src_x), (dst_y, dst_x) = src, dst
    dst_y, dst_x = np.clip(dst_y, src_y[0], src_y[-1]), np.clip(dst_x, src_x[0], src_x[-1])
    along_x = CubicSpline(src_x, grid, axis=1, bc_type="not-a-knot")(dst_x)
    return CubicSpline(src_y, along_x, axis=0, bc_type="not-a-knot")(dst_y)


def test_matches_independent_spline_reference():
    torch.manual_seed(0)
    heads, src, dst = 3, 7, 13  # 4x4 window -> 7x7 window (table sides 7 -> 13)
    table = torch.randn(src * src + 3, heads, dtype=torch.float64)
    out = resize_relative_position_table(table, (4, 4), (7, 7))
    assert out.shape == (dst * dst + 3, heads)
    coords = geometric_source_coordinates(src, dst)
    target = np.arange(-(dst // 2), dst // 2 + 0.1)
    for head in range(heads):
        expected = _separable_not_a_knot(table[:-3, head].numpy().reshape(src, src), (coords, coords), (target, target))
        np.testing.assert_allclose(out[:-3, head].numpy(), expected.reshape(-1), atol=1e-9)
    torch.testing.assert_close(out[-3:], table[-3:], rtol=0, atol=0)


def test_reproduces_bicubic_polynomial_exactly():
    src_side, dst_side = 27, 47  # 224 -> 384
    coords = geometric_source_coordinates(src_side, dst_side)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")

    def poly(y, x):
        return 0.3 + 0.1 * y - 0.02 * x**2 + 1e-4 * (y**3) * x - 2e-5 * x**3

    table = torch.from_numpy(np.concatenate([poly(yy, xx).reshape(-1, 1), [[5.0], [6.0], [7.0]]]))
    out = resize_relative_position_table(table, (14, 14), (24, 24)).numpy()
    target = np.clip(np.arange(-23, 23.1), coords[0], coords[-1])
    ty, tx = np.meshgrid(target, target, indexing="ij")
    np.testing.assert_allclose(out[:-3, 0], poly(ty, tx).reshape(-1), atol=1e-8)
    np.testing.assert_array_equal(out[-3:, 0], [5.0, 6.0, 7.0])


def test_source_grid_and_values_agree_with_timm(monkeypatch):
    pos_embed_rel = pytest.importorskip("timm.layers.pos_embed_rel")
    torch.manual_seed(0)
    side = 27
    offsets = torch.arange(-13, 14, dtype=torch.float32)
    smooth = torch.sin(offsets[:, None] / 6) + torch.cos(offsets[None, :] / 9)
    table = torch.cat([torch.stack([smooth, 2 * smooth], -1).reshape(side * side, 2), torch.randn(3, 2)])
    ours = resize_relative_position_table(table, (14, 14), (20, 20))
    theirs = pos_embed_rel.resize_rel_pos_bias_table(table, (20, 20), (39 * 39 + 3, 2))
    # timm's default path interpolates linearly on the same geometric grid: close, not equal.
    assert (ours - theirs).abs().max() < 2e-2
    torch.testing.assert_close(ours[-3:], theirs[-3:])

    seen = {}

    class _Recorder:
        def __init__(self, grid, values):
            seen["grid"] = [g.double().numpy() for g in grid]

        def __call__(self, points):
            return torch.zeros(points[0].shape)

    monkeypatch.setattr(pos_embed_rel, "RegularGridInterpolator", _Recorder)
    pos_embed_rel.resize_rel_pos_bias_table(table, (20, 20), (39 * 39 + 3, 2))
    for axis in seen["grid"]:
        np.testing.assert_allclose(axis, geometric_source_coordinates(27, 39), atol=1e-5)


def test_identity_when_window_unchanged_and_dtype_kept():
    table = torch.randn(7 * 7 + 3, 4, dtype=torch.bfloat16)
    assert resize_relative_position_table(table, (4, 4), (4, 4)) is table
    grown = resize_relative_position_table(table, (4, 4), (6, 6))
    assert grown.dtype == torch.bfloat16 and grown.shape == (11 * 11 + 3, 4)


def test_non_square_window_keeps_unchanged_axis():
    # Table depends on dw only; the width axis (5 -> 5) is kept, the height axis (3 -> 7) is interpolated.
    dw_values = torch.tensor([0.5, -1.0, 2.0, 3.0, -0.25, 1.5, 0.0, 4.0, -2.0])  # 2*5-1 = 9 columns
    table = torch.cat([dw_values.repeat(3).reshape(-1, 1), torch.tensor([[9.0], [8.0], [7.0]])])
    out = resize_relative_position_table(table, (2, 5), (4, 5))
    assert out.shape == (7 * 9 + 3, 1)
    torch.testing.assert_close(out[:-3, 0].reshape(7, 9), dw_values.expand(7, 9), atol=1e-6, rtol=0)


def test_wrong_table_size_is_rejected():
    with pytest.raises(ValueError, match="rows"):
        resize_relative_position_table(torch.zeros(50, 2), (4, 4), (6, 6))


def test_absolute_position_embeddings_bicubic_keeps_cls():
    torch.manual_seed(0)
    pos = torch.randn(1, 1 + 16, 8)
    out = resize_absolute_position_embeddings(pos, (4, 4), (6, 6))
    assert out.shape == (1, 37, 8)
    torch.testing.assert_close(out[:, 0], pos[:, 0])
    grid = pos[0, 1:].T.reshape(1, 8, 4, 4)
    expected = F.interpolate(grid, size=(6, 6), mode="bicubic", align_corners=False).reshape(8, 36).T
    torch.testing.assert_close(out[0, 1:], expected)
    assert resize_absolute_position_embeddings(pos, (4, 4), (4, 4)) is pos
    with pytest.raises(ValueError, match="grid"):
        resize_absolute_position_embeddings(pos, (5, 5), (6, 6))
