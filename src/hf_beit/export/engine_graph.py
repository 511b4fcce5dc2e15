"""What hf_beit knows about its own graph, applied to the copy an inference engine compiles.

Each rewrite is exact algebra on a deep copy (the caller's model is untouched) made with ordinary module
substitutions, so the copy still runs eagerly and exports like any other model:

* **relative-position bias as a constant**: each ``BeitRelativePositionBias`` (a table gathered through an index
  and reshaped) is replaced by a module returning the finished ``(heads, tokens, tokens)`` bias for the export
  resolution, so the graph holds one constant per layer instead of gathers and scatters;
* **layer scale folded into the GEMM before it**: ``lambda * (x W^T + b) = x (lambda W)^T + lambda b``, so the
  output projection and the second MLP GEMM carry the scale and two multiplies per block disappear;
* **fused qkv**: the export already traces one GEMM for q, k and v (``fused_linear`` on the plain path); the
  ONNX file stores its weight as one initializer (:func:`~hf_beit.export.onnx_export.fold_weight_layout`);
* **separate q, k, v for the graph engines** (:class:`SeparateProjectionAttention`; ONNX Runtime and
  OpenVINO, not inductor): three ``N = 768`` projections run as fast as one ``N = 2304`` (BEiT-base, batch 8, AVX2
  Zen 3: 43 vs 47 ms per block in ORT's profile), while the fused output costs a ``Split`` (ORT) or a 5-D
  transpose run by OpenVINO's reference kernel (7 ms per batch of 8, int8, Zen 4), and keys go straight to
  ``(batch, heads, dim, tokens)``; in ORT int8 the three projections share one dynamic quantisation of their input
  (one ``DynamicQuantizeLinear``, three ``MatMulIntegerToFloat``); OpenVINO still fuses the scores, softmax and
  context into one attention kernel. BEiT-base 224, interleaved A/B: ORT on a Zen 3 int8 1.01-1.08x at batch 8 and
  1.03-1.17x at batch 1 (two runs), fp32 1.03-1.05x at batch 8 and 0.94-1.03x at batch 1 (three runs); OpenVINO
  on a Zen 4 (with the precise head's layout below) int8 1.05x / 1.13x at batch 8 (two runs) and 1.00x / 1.02x at
  batch 1, bf16 1.02x / 1.00x, fp32 1.02x / 1.01x;
* **BatchNorm folded into the transposed convolution before it** (the segmentation pyramid's ``fpn1``):
  ``BN(ConvT(x))`` is one ``ConvT`` with per-output-channel scaled weights and a shifted bias. Inductor's weight
  freezing makes this fold itself, wrongly for a square transposed convolution (torch 2.14.1: max error 1.4 on a
  8 -> 8 channel ``ConvTranspose2d`` + ``BatchNorm2d``, exact for 8 -> 4), so the copy arrives folded;
* **a precise classifier head** (bf16 / int8 only): the classifier ``nn.Linear`` becomes a broadcast multiply and
  a sum over features (the same dot products). OpenVINO's CPU plugin keeps in fp32 every node from which an output
  is reached without crossing a GEMM or convolution; with no GEMM in the head that set reaches back through the
  final norm and pooling along the chain of residual adds, so the whole residual stream stays fp32 (as in hf_beit's
  eager bf16 / int8 modes) while LayerNorm inputs, GEMMs and attention run bf16 / int8. That residual stream is what
  buys the precision: random-weight BEiT-base has near-flat logits, where this decides top-1. OpenVINO bf16 agreed
  with fp32 on 95.5% of the bench photos with the head as a GEMM, 99.1% without; making only the pooling a GEMM
  (fp32 tail, bf16 residual stream) measured 1.05x faster but back at the lower precision (max logit difference
  0.046 vs 0.011, agreement 94.4% vs 98.6%, AMX Xeon). Under autocast (inductor) the head is an fp32 GEMM instead.
"""

from __future__ import annotations

import torch
from torch import nn

from ..modeling_beit import BeitSelfAttention, combined_attention_bias
from ..relative_position import BeitRelativePositionBias
from .program import reference_copy


class ConstantBias(nn.Module):
    """A precomputed relative-position bias for one patch grid (stands in for ``BeitRelativePositionBias``)."""

    def __init__(self, bias: torch.Tensor, window: tuple[int, int]) -> None:
        super().__init__()
        self.window = tuple(window)
        self.register_buffer("bias", bias.detach().clone(), persistent=False)

    def forward(self, window: tuple[int, int]) -> torch.Tensor:
        if tuple(int(side) for side in window) != self.window:
            raise ValueError(f"This bias was folded for a {self.window} patch grid; got {tuple(window)}.")
        return self.bias


class PreciseHead(nn.Module):
    """``x @ weight.T + bias`` kept in fp32: a broadcast multiply and a sum for the graph engines convert (so they
    do not lower it to bf16 / int8), an fp32 GEMM with autocast off under autocast (compiled bf16)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.weight = nn.Parameter(linear.weight.detach().clone(), requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return nn.functional.linear(features.float(), self.weight, self.bias)
        # products laid out (..., features, classes) and summed over features: OpenVINO's CPU plugin sums them in
        # its blocked layout, while the (..., classes, features) layout cost a 15 ms reorder per batch of 8
        # (BEiT-base int8, Zen 4). keepdim + squeeze: OpenVINO 2026.4 computes a plain ``sum + bias`` wrongly
        # (max error 0.13 on a 32 -> 3 head), this form exactly (3e-8); verified by compile_for_engine.
        out = (features.unsqueeze(-1) * self.weight.T).sum(-2, keepdim=True).squeeze(-2)
        return out if self.bias is None else out + self.bias


class SeparateProjectionAttention(nn.Module):
    """``BeitSelfAttention`` (inference) with q, k and v as three linears and attention as two matmuls.

    Keeps the original's ``query``/``key``/``value`` and bias modules (same parameter names); returns
    ``(context, None)`` like it.
    """

    def __init__(self, attention: nn.Module) -> None:
        super().__init__()
        self.query, self.key, self.value = attention.query, attention.key, attention.value
        self.relative_position_bias = attention.relative_position_bias
        self.num_heads, self.head_dim, self.scaling = attention.num_heads, attention.head_dim, attention.scaling

    def forward(self, hidden_states: torch.Tensor, grid: tuple[int, int], shared_bias: torch.Tensor | None = None,
                output_attentions: bool = False) -> tuple[torch.Tensor, None]:
        if output_attentions:
            raise ValueError("An engine-ready copy does not form attention probabilities.")
        batch, tokens, _ = hidden_states.shape
        heads = (batch, tokens, self.num_heads, self.head_dim)
        query = self.query(hidden_states).reshape(heads).transpose(1, 2)
        key = self.key(hidden_states).reshape(heads).permute(0, 2, 3, 1)  # (batch, heads, head_dim, tokens)
        value = self.value(hidden_states).reshape(heads).transpose(1, 2)
        scores = (query @ key) * self.scaling
        bias = combined_attention_bias(self.relative_position_bias, grid, shared_bias)
        if bias is not None:
            scores = scores + bias.to(scores.dtype)
        context = scores.softmax(dim=-1) @ value
        return context.transpose(1, 2).reshape(batch, tokens, -1), None


def engine_ready_copy(module: nn.Module, grid: tuple[int, int] | None, precise_head: bool = False,
                      fold_scale: bool = True, separate_qkv: bool = False) -> nn.Module:
    """A reference copy of ``module`` (eval, fp32, plain kernels) with the rewrites above applied.

    ``grid`` is the patch grid of the export resolution; ``None`` (a dynamic resolution) keeps the bias modules.
    ``precise_head`` replaces a ``classifier`` linear by :class:`PreciseHead`; ``fold_scale=False`` keeps the
    layer scale as a multiply; ``separate_qkv`` swaps in :class:`SeparateProjectionAttention`.
    """
    copy = reference_copy(module)
    if grid is not None:
        fold_relative_position_bias(copy, grid)
    if fold_scale:
        fold_layer_scale(copy)
    if separate_qkv:
        separate_projections(copy)
    fold_transposed_conv_batch_norm(copy)
    if precise_head and isinstance(getattr(copy, "classifier", None), nn.Linear):
        copy.classifier = PreciseHead(copy.classifier)
    return copy


@torch.no_grad()
def fold_relative_position_bias(model: nn.Module, grid: tuple[int, int]) -> int:
    """Replace every relative-position bias module by its bias for ``grid``; returns how many were replaced."""
    return _replace_modules(model, BeitRelativePositionBias, lambda child: ConstantBias(child(tuple(grid)), grid))


def separate_projections(model: nn.Module) -> int:
    """Replace every ``BeitSelfAttention`` by :class:`SeparateProjectionAttention`; returns how many."""
    return _replace_modules(model, BeitSelfAttention, SeparateProjectionAttention)


def _replace_modules(model: nn.Module, kind: type, replacement) -> int:
    """Set each submodule of type ``kind`` to ``replacement(submodule)``; returns how many were replaced."""
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, kind)
    ]
    for parent, name, child in targets:
        setattr(parent, name, replacement(child))
    return len(targets)


@torch.no_grad()
def fold_layer_scale(model: nn.Module) -> int:
    """Fold each block's ``lambda_1``/``lambda_2`` into the GEMM producing the scaled branch; returns the count."""
    folded = 0
    for block in model.modules():
        pairs = (("lambda_1", _attention_output(block)), ("lambda_2", _mlp_output(block)))
        for name, linear in pairs:
            scale = getattr(block, name, None)
            if not isinstance(scale, nn.Parameter) or not isinstance(linear, nn.Linear):
                continue
            linear.weight.mul_(scale[:, None])
            if linear.bias is not None:
                linear.bias.mul_(scale)
            setattr(block, name, None)
            folded += 1
    return folded


@torch.no_grad()
def fold_transposed_conv_batch_norm(model: nn.Module) -> int:
    """Fold each eval ``BatchNorm2d`` that directly follows a ``ConvTranspose2d`` in an ``nn.Sequential`` into it."""
    folded = 0
    for sequence in [module for module in model.modules() if isinstance(module, nn.Sequential)]:
        for index in range(len(sequence) - 1):
            conv, norm = sequence[index], sequence[index + 1]
            if not (isinstance(conv, nn.ConvTranspose2d) and conv.groups == 1 and isinstance(norm, nn.BatchNorm2d)
                    and norm.running_mean is not None and not norm.training):
                continue
            scale = torch.rsqrt(norm.running_var + norm.eps)
            if norm.weight is not None:
                scale = scale * norm.weight
            shift = -norm.running_mean * scale + (norm.bias if norm.bias is not None else 0.0)
            if conv.bias is None:
                conv.bias = nn.Parameter(torch.zeros_like(norm.running_mean), requires_grad=False)
            conv.bias.mul_(scale).add_(shift)
            conv.weight.mul_(scale[None, :, None, None])  # ConvTranspose2d weights: (in, out, kH, kW)
            sequence[index + 1] = nn.Identity()
            folded += 1
    return folded


def _attention_output(block: nn.Module) -> nn.Module | None:
    return getattr(getattr(getattr(block, "attention", None), "output", None), "dense", None)


def _mlp_output(block: nn.Module) -> nn.Module | None:
    return getattr(getattr(block, "output", None), "dense", None)
