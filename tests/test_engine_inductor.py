"""``compile_for_engine(engine="inductor")`` and the attention it compiles, against eager fp32 and PyTorch's SDPA."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import random_pixels, randomize_, tiny_config
from transformers.modeling_outputs import ImageClassifierOutput

import hf_beit
from hf_beit.acceleration import attention as attention_module
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


@pytest.mark.parametrize("amx", [False, True])
def test_bf16_is_close_and_compiles_the_attention_for_the_cpu(classifier, amx, monkeypatch):
    """Without AMX: the compiled matmul attention; with AMX: PyTorch's flash attention (faster there)."""
    if not bf16_available():
        pytest.skip("no native bf16 on this CPU")
    monkeypatch.setattr(attention_module, "amx_available", lambda: amx)
    compiled = compile_for_engine(classifier, "inductor", "bf16")
    pixels = random_pixels(2, seed=7)
    compiled.backend.compile(2)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        logits = compiled(pixel_values=pixels).logits
    expected = _eager_logits(classifier, pixels)
    difference = (logits - expected).abs().max().item()
    assert 0 < difference <= 0.05 * expected.abs().max().item()  # really bf16, and close
    operators = {event.key for event in profile.key_averages()}
    assert any("Torch-Compiled Region" in name for name in operators), sorted(operators)  # really compiled
    flash = any("flash_attention" in name for name in operators)
    assert flash == amx, sorted(operators)
    if not amx:  # the compiled matmuls, not eager hf_beit's batched-GEMM attention (which adds the bias with baddbmm)
        assert "aten::bmm" in operators and "aten::baddbmm" not in operators, sorted(operators)


def test_refuses_int8_and_other_thread_counts(classifier):
    with pytest.raises(ValueError, match="compiles fp32 and bf16"):
        compile_for_engine(classifier, "inductor", "int8")
    other = torch.get_num_threads() + 1
    with pytest.raises(ValueError, match=rf"torch.set_num_threads\({other}\)"):
        compile_for_engine(classifier, "inductor", "fp32", threads=other, verify=False)


def test_batch_sizes_beyond_the_limit_are_padded_or_chunked(classifier, monkeypatch):
    from hf_beit.export import engine_inductor

    monkeypatch.setattr(engine_inductor, "MAX_BATCH_SIZES", 2)
    compiled = compile_for_engine(classifier, "inductor", "fp32")  # compiles batch 1
    compiled.backend.compile(3)
    for batch in (2, 5):  # 2: padded to 3; 5: chunks of 3 (the last padded)
        pixels = random_pixels(batch, seed=batch)
        got = compiled(pixel_values=pixels).logits
        assert got.shape == (batch, 3)
        assert (got - _eager_logits(classifier, pixels)).abs().max().item() <= 1e-4
    assert sorted(compiled.backend.timings) == ["compile batch 1", "compile batch 3"]


def test_a_changed_thread_count_is_refused(classifier):
    compiled = compile_for_engine(classifier, "inductor", "fp32")
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        with pytest.raises(RuntimeError, match=rf"compiled for {threads} threads"):
            compiled(pixel_values=random_pixels(1))
    finally:
        torch.set_num_threads(threads)


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


def test_segmentation_at_another_resolution():
    config = tiny_config(**{**RELATIVE, "num_hidden_layers": 4, "out_indices": [0, 1, 2, 3]})
    segmenter = randomize_(hf_beit.BeitForSemanticSegmentation(config), seed=3).eval()
    compiled = compile_for_engine(segmenter, "inductor", "fp32", image_size=48)
    pixels = random_pixels(1, size=48, seed=2)  # the batch size verified while compiling: no second compilation
    with torch.no_grad():
        expected = segmenter(pixel_values=pixels, interpolate_pos_encoding=True).logits
    got = compiled(pixel_values=pixels).logits
    assert got.shape == expected.shape and (got - expected).abs().max().item() <= 1e-4
