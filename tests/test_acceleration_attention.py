"""hf_beit.acceleration.attend: the batched-GEMM bf16 path and the SDPA path against an explicit fp32 reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hf_beit.acceleration import attend
from hf_beit.acceleration import attention as attention_module

BATCH, TOKENS, HEADS, HEAD_DIM = 3, 17, 4, 8


def _reference(qkv: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Textbook attention in float64, one head at a time."""
    qkv = qkv.double().reshape(BATCH, TOKENS, 3, HEADS, HEAD_DIM)
    heads = []
    for h in range(HEADS):
        q, k, v = (qkv[:, :, i, h] for i in range(3))
        scores = q @ k.transpose(1, 2) / math.sqrt(HEAD_DIM)
        if bias is not None:
            scores = scores + bias.double()[0, h]
        heads.append(scores.softmax(-1) @ v)
    return torch.cat(heads, dim=-1)


def _inputs(with_bias: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    generator = torch.Generator().manual_seed(0)
    qkv = torch.randn(BATCH, TOKENS, 3 * HEADS * HEAD_DIM, generator=generator) * 1.5
    bias = torch.randn(1, HEADS, TOKENS, TOKENS, generator=generator) if with_bias else None
    return qkv, bias


@pytest.mark.parametrize("with_bias", [True, False])
def test_fp32_uses_sdpa_and_matches_the_reference(with_bias, monkeypatch):
    qkv, bias = _inputs(with_bias)
    calls = []
    monkeypatch.setattr(attention_module, "_batched_gemm_attention", lambda *a: calls.append(a))
    with torch.inference_mode():
        out = attend(qkv, bias, HEADS)
    assert not calls
    assert out.shape == (BATCH, TOKENS, HEADS * HEAD_DIM)
    torch.testing.assert_close(out.double(), _reference(qkv, bias), atol=1e-5, rtol=1e-5)


@pytest.fixture
def without_amx(monkeypatch):
    """The CPU as one without AMX tiles, where bf16 inference takes the batched-GEMM path."""
    monkeypatch.setattr(attention_module, "amx_available", lambda: False)


@pytest.mark.parametrize("with_bias", [True, False])
def test_bf16_inference_uses_batched_gemms_within_bf16_rounding(with_bias, without_amx):
    qkv, bias = _inputs(with_bias)
    expected = _reference(qkv.bfloat16(), None if bias is None else bias.bfloat16())
    assert attention_module._use_batched_gemms(qkv.bfloat16(), bias, 0.0)
    with torch.inference_mode():
        out = attend(qkv.bfloat16(), None if bias is None else bias.bfloat16(), HEADS)
    assert out.dtype == torch.bfloat16
    # outputs are convex combinations of v (|v| <= ~6): a few bf16 ulps of that scale
    assert (out.double() - expected).abs().max() < 0.05


@pytest.mark.parametrize("amx", [False, True])
def test_bf16_attention_agrees_with_sdpa_in_bf16(amx, monkeypatch):
    monkeypatch.setattr(attention_module, "amx_available", lambda: amx)
    qkv, bias = _inputs(True)
    qkv, bias = qkv.bfloat16(), bias.bfloat16()
    q, k, v = qkv.reshape(BATCH, TOKENS, 3, HEADS, HEAD_DIM).permute(2, 0, 3, 1, 4).unbind(0)
    sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2).reshape(BATCH, TOKENS, -1)
    with torch.inference_mode():
        out = attend(qkv, bias, HEADS)
    assert (out.float() - sdpa.float()).abs().max() < 0.05


def test_bf16_inference_uses_sdpa_on_amx(monkeypatch):
    monkeypatch.setattr(attention_module, "amx_available", lambda: True)
    calls = []
    monkeypatch.setattr(attention_module, "_batched_gemm_attention", lambda *a: calls.append(a))
    qkv, bias = _inputs(True)
    assert not attention_module._use_batched_gemms(qkv.bfloat16(), bias, 0.0)
    with torch.inference_mode():
        out = attend(qkv.bfloat16(), bias.bfloat16(), HEADS)
    assert not calls and out.dtype == torch.bfloat16


def test_autograd_dropout_and_tracing_fall_back_to_sdpa(without_amx):
    qkv, bias = _inputs(True)
    qkv = qkv.bfloat16()
    assert not attention_module._use_batched_gemms(qkv.requires_grad_(), bias, 0.0)
    assert not attention_module._use_batched_gemms(qkv.detach(), bias, 0.1)
    assert not attention_module._use_batched_gemms(qkv.detach().float(), bias, 0.0)
    # gradients flow through the SDPA path
    leaf = qkv.detach().float().requires_grad_()
    attend(leaf, bias, HEADS).sum().backward()
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0


def test_compiles_without_graph_breaks(without_amx):
    qkv, bias = _inputs(True)
    compiled = torch.compile(lambda t, b: attend(t, b, HEADS), backend="eager", fullgraph=True)
    with torch.no_grad():
        traced = compiled(qkv.bfloat16(), bias.bfloat16())  # traced: the SDPA branch
        eager = attend(qkv.bfloat16(), bias.bfloat16(), HEADS)  # eager: the batched GEMMs
    assert (traced.float() - eager.float()).abs().max() < 0.05


@pytest.mark.parametrize("budget", [1, 2 * TOKENS * TOKENS * 2])  # one head per GEMM, then groups of 2 heads
def test_head_groups_for_long_sequences_give_the_same_result(budget, monkeypatch, without_amx):
    qkv, bias = _inputs(True)
    qkv, bias = qkv.bfloat16(), bias.bfloat16()
    with torch.inference_mode():
        whole = attend(qkv, bias, HEADS)
        monkeypatch.setattr(attention_module, "SCORES_BUDGET_BYTES", budget)
        grouped = attend(qkv, bias, HEADS)
    torch.testing.assert_close(grouped, whole, atol=0, rtol=0)


def test_per_image_and_head_broadcast_biases(without_amx):
    qkv, bias = _inputs(True)
    per_image = torch.randn(BATCH, HEADS, TOKENS, TOKENS)
    shared_over_heads = bias[:, :1]
    for candidate in (per_image, shared_over_heads):
        q, k, v = qkv.reshape(BATCH, TOKENS, 3, HEADS, HEAD_DIM).permute(2, 0, 3, 1, 4).unbind(0)
        expected = (
            F.scaled_dot_product_attention(q, k, v, attn_mask=candidate).transpose(1, 2).reshape(BATCH, TOKENS, -1)
        )
        with torch.inference_mode():
            out = attend(qkv.bfloat16(), candidate.bfloat16(), HEADS)
        assert (out.float() - expected).abs().max() < 0.05
