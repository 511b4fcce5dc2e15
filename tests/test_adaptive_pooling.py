"""Adaptive average pooling as averaging matrices: equal to torch's, same state dict, exports at symbolic sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import random_pixels, randomize_, tiny_config
from torch import nn

import hf_beit
from hf_beit.adaptive_pooling import AdaptiveAvgPool2d, adaptive_avg_pool2d, averaging_matrix


@pytest.mark.parametrize("size", [(20, 20), (7, 13), (5, 5), (2, 3), (1, 1), (40, 40)])
@pytest.mark.parametrize("scale", [1, 2, 3, 6])
def test_equals_torch_adaptive_avg_pool(size, scale):
    x = torch.randn(2, 5, *size, generator=torch.Generator().manual_seed(sum(size) + scale), requires_grad=True)
    ours = adaptive_avg_pool2d(x, scale)
    reference = F.adaptive_avg_pool2d(x, scale)
    assert ours.shape == reference.shape
    assert torch.allclose(ours, reference, atol=1e-6, rtol=0)
    weights = torch.randn(reference.shape)
    (grad_ours,) = torch.autograd.grad((ours * weights).sum(), x)
    (grad_reference,) = torch.autograd.grad((reference * weights).sum(), x)
    assert torch.allclose(grad_ours, grad_reference, atol=1e-6, rtol=0)


def test_rectangular_output_size_and_windows():
    x = torch.randn(1, 3, 11, 9)
    assert torch.allclose(AdaptiveAvgPool2d((2, 4))(x), F.adaptive_avg_pool2d(x, (2, 4)), atol=1e-6, rtol=0)
    # 5 rows into 3 cells: windows [0, 2), [1, 4), [3, 5) -- overlapping, as in torch
    expected = torch.tensor([[1 / 2, 1 / 2, 0, 0, 0], [0, 1 / 3, 1 / 3, 1 / 3, 0], [0, 0, 0, 1 / 2, 1 / 2]])
    assert torch.allclose(averaging_matrix(5, 3, x), expected)


def test_segmentation_state_dict_and_outputs_unchanged_against_nn_adaptive_pool():
    config = tiny_config(out_indices=[0, 1, 2, 3], image_size=80, use_relative_position_bias=True)
    model = randomize_(hf_beit.BeitForSemanticSegmentation(config)).eval()
    stock = randomize_(hf_beit.BeitForSemanticSegmentation(config)).eval()
    for block, scale in zip(stock.decode_head.psp_modules, config.pool_scales):
        block[0] = nn.AdaptiveAvgPool2d(scale)  # what the head used before
    assert list(model.state_dict()) == list(stock.state_dict())
    stock.load_state_dict(model.state_dict())
    pixels = random_pixels(2, size=80)  # 10x10 patches -> 5x5 top level: pools of 2, 3 and 6 do not divide it
    with torch.no_grad():
        assert torch.allclose(model(pixels).logits, stock(pixels).logits, atol=1e-5, rtol=0)


def test_exports_with_a_symbolic_size():
    pool = AdaptiveAvgPool2d(3).eval()
    dims = {2: torch.export.Dim("height", min=2), 3: torch.export.Dim("width", min=2)}
    program = torch.export.export(pool, (torch.randn(1, 4, 20, 20),), dynamic_shapes=(dims,), strict=False)
    for size in [(20, 20), (17, 18), (6, 31)]:
        x = torch.randn(1, 4, *size)
        assert torch.allclose(program.module()(x), F.adaptive_avg_pool2d(x, 3), atol=1e-6, rtol=0)
