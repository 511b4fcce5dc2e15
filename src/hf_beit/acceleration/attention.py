"""Softmax attention over a fused qkv tensor, on the fastest kernel for its dtype, device and CPU.

PyTorch's CPU flash-attention kernel works on small tiles; without AMX its bf16 tiles run far below the GEMM peak
(~100 GFLOP/s on a Zen 4 core pair at ViT-B sizes). So for bf16 inference on a CPU without AMX, two batched
oneDNN GEMMs per image with the softmax in between are used: 1.3-1.7x faster from 197 to 1601 tokens. Under
``torch.compile`` the same computation is written as two matmuls around an fp32 softmax, which inductor lowers to
batched GEMMs and one fused softmax kernel: 1.15x the same compiled model with SDPA at BEiT-base 224, batch 1 and 8,
on a Zen 5 (one comparison run while building ``compile_for_engine(engine="inductor")``). With AMX the flash
kernel wins: on a 2-core AMX Xeon, BEiT-base 224 bf16 ran 1.13x (batch 8) and 1.05x (batch 1) faster eagerly
with SDPA than with the batched GEMMs, and 1.2x (batch 8) and 1.0x (batch 1) compiled, so there, as everywhere
else (fp32, training, autograd, other devices, ``torch.export`` tracing), ``F.scaled_dot_product_attention`` runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._packing import amx_available
from .recording import record_attention

SCORES_BUDGET_BYTES = 1 << 20  # attention scores computed at once: about one core's L2 cache


def attend(
    qkv: torch.Tensor,
    bias: torch.Tensor | None,
    num_heads: int,
    dropout_p: float = 0.0,
    owner: nn.Module | None = None,
) -> torch.Tensor:
    """``softmax(q k^T / sqrt(head_dim) + bias) v`` per head, for ``qkv`` of shape ``(batch, tokens, 3 * dim)``.

    Returns ``(batch, tokens, dim)``. ``bias`` broadcasts to ``(batch, heads, tokens, tokens)`` (BEiT passes
    ``(1, heads, tokens, tokens)``). ``owner`` names the attention module in :func:`record_kernels` reports.
    """
    batch, tokens, width = qkv.shape
    head_dim = width // (3 * num_heads)
    heads = qkv.reshape(batch, tokens, 3, num_heads, head_dim).permute(2, 0, 3, 1, 4)
    if _is_compiling_not_exporting() and _gemm_attention_pays(qkv, bias, dropout_p):  # eager: one cheap check
        record_attention(owner, "bf16 matmuls for the compiler")
        context = _matmul_attention(heads, bias, head_dim**-0.5)
    elif _use_batched_gemms(qkv, bias, dropout_p):
        record_attention(owner, "bf16 batched oneDNN GEMMs")
        context = _batched_gemm_attention(heads, bias, head_dim**-0.5)
    else:
        record_attention(owner, "sdpa")
        q, k, v = heads.unbind(0)
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)
    return context.transpose(1, 2).reshape(batch, tokens, num_heads * head_dim)


def _is_bf16_cpu_inference(qkv: torch.Tensor, bias: torch.Tensor | None, dropout_p: float) -> bool:
    if qkv.dtype != torch.bfloat16 or qkv.device.type != "cpu" or dropout_p > 0:
        return False
    needs_grad = torch.is_grad_enabled() and (qkv.requires_grad or (bias is not None and bias.requires_grad))
    return not needs_grad


def _gemm_attention_pays(qkv: torch.Tensor, bias: torch.Tensor | None, dropout_p: float) -> bool:
    """bf16 CPU inference on a CPU without AMX: where GEMM-based attention beats PyTorch's flash kernel."""
    return _is_bf16_cpu_inference(qkv, bias, dropout_p) and not amx_available()


def _is_compiling_not_exporting() -> bool:
    return torch.compiler.is_compiling() and not torch.compiler.is_exporting()


def _use_batched_gemms(qkv: torch.Tensor, bias: torch.Tensor | None, dropout_p: float) -> bool:
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or torch._C._len_torch_dispatch_stack() > 0:
        return False
    return _gemm_attention_pays(qkv, bias, dropout_p)


def _matmul_attention(heads: torch.Tensor, bias: torch.Tensor | None, scale: float) -> torch.Tensor:
    """``heads`` is ``(3, batch, heads, tokens, head_dim)``; bf16 GEMMs, then scale, bias and softmax in fp32.

    For compilers: inductor turns the two matmuls into batched GEMMs and fuses scale, bias and softmax.
    """
    q, k, v = heads.unbind(0)
    scores = (q @ k.transpose(-1, -2)).float() * scale
    if bias is not None:
        scores = scores + bias.float()
    return scores.softmax(dim=-1).to(v.dtype) @ v


def _batched_gemm_attention(heads: torch.Tensor, bias: torch.Tensor | None, scale: float) -> torch.Tensor:
    """``heads`` is ``(3, batch, heads, tokens, head_dim)``; returns ``(batch, heads, tokens, head_dim)``.

    One image and a group of heads at a time, so the group's scores stay in the L2 cache (all 12 heads at 224
    pixels, one head at 640), the bias needs no batch copy and no batch-sized temporaries are allocated (large
    short-lived buffers cost page faults on every call).
    """
    _, batch, num_heads, tokens, head_dim = heads.shape
    out = heads.new_empty(batch, num_heads, tokens, head_dim)
    if bias is not None:
        bias = bias.to(heads.dtype).expand(batch, num_heads, tokens, tokens)  # a view: no copy
    group = min(num_heads, max(1, SCORES_BUDGET_BYTES // (tokens * tokens * heads.element_size())))
    for index in range(batch):
        for start in range(0, num_heads, group):
            q, k, v = heads[:, index, start : start + group].unbind(0)
            if bias is None:
                scores = torch.bmm(q, k.transpose(1, 2)).mul_(scale)
            else:
                scores = torch.baddbmm(bias[index, start : start + group], q, k.transpose(1, 2), alpha=scale)
            torch.bmm(scores.softmax(dim=-1), v, out=out[index, start : start + group])
    return out
