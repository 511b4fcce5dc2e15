"""``compile_for_engine(engine="inductor")`` and the attention it compiles, against eager fp32 and PyTorch's SDPA."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import random_pixels, randomize_, tiny_config
from transformers.modeling_outputs import ImageClassifierOutput

import hf_beit
from hf_beit.acceleration import bf16_available
from hf_beit.acceleration.attention import _matmul_attention
from hf_beit.export import compile_for_engine

RELATIVE = {"use_relative_position_bias": True, "use_mean_pooling": True, "num_hidden_layers": 2}


@pytest.fixture(scope="module")
def classifier():
    return randomize_(hf_beit.BeitForImageClassification(tiny_config(**RELATIVE))).eval()


@torch.no_grad()
def _eager_logits(model, pixels):
    return model(pixel_values=pixels).logits


def test_fp32_matches_eager(classifier):
    compiled = compile_for_engine(classifier, "inductor", "fp32")
    assert compiled.max_difference <= 1e-4 and "compile batch 1" in compiled.timings
    for batch in (1, 3):  # 3: compiled on first use
        pixels = random_pixels(batch, seed=batch)
        out = compiled(pixel_values=pixels)
        assert isinstance(out, ImageClassifierOutput)
        assert (out.logits - _eager_logits(classifier, pixels)).abs().max().item() <= 1e-4
    assert "compile batch 3" in compiled.backend.timings


def test_bf16_is_close_and_skips_flash_attention(classifier):
    if not bf16_available():
        pytest.skip("no native bf16 on this CPU")
    compiled = compile_for_engine(classifier, "inductor", "bf16")
    pixels = random_pixels(2, seed=7)
    compiled.backend.compile(2)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        logits = compiled(pixel_values=pixels).logits
    expected = _eager_logits(classifier, pixels)
    difference = (logits - expected).abs().max().item()
    assert 0 < difference <= 0.05 * expected.abs().max().item()  # really bf16, and close
    operators = {event.key for event in profile.key_averages()}
    assert not any("flash_attention" in name for name in operators), sorted(operators)
    assert any("bmm" in name for name in operators), sorted(operators)  # the attention's batched GEMMs


def test_refuses_int8_and_other_thread_counts(classifier):
    with pytest.raises(ValueError, match="compiles fp32 and bf16"):
        compile_for_engine(classifier, "inductor", "int8")
    with pytest.raises(ValueError, match=r"torch.set_num_threads\(7\)"):
        compile_for_engine(classifier, "inductor", "fp32", threads=7, verify=False)


@pytest.mark.parametrize("with_bias", [True, False])
def test_matmul_attention_is_scaled_dot_product_attention(with_bias):
    generator = torch.Generator().manual_seed(0)
    heads = torch.randn(3, 2, 4, 17, 8, generator=generator).bfloat16()  # (q/k/v, batch, heads, tokens, dim)
    bias = torch.randn(1, 4, 17, 17, generator=generator) if with_bias else None
    q, k, v = heads.float().unbind(0)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    got = _matmul_attention(heads, bias, 8**-0.5)
    assert got.dtype == torch.bfloat16 and got.shape == expected.shape
    assert (got.float() - expected).abs().max().item() <= 0.03
