"""``fused_linear``: one GEMM for one or several ``nn.Linear`` sharing an input, on the fastest kernel available.

Inference (no autograd needed) uses weights packed once for oneDNN (fp32, bf16) or int8, cached on the first
module and rebuilt whenever a weight or bias changes (pointer, version counter or dtype). Training, autograd,
``torch.compile`` tracing and non-CPU tensors take the plain ``F.linear`` path, so gradients are exact and
compiled graphs have no breaks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._packing import PackedLinear, _activate, bf16_available, int8_engine, onednn_available, pack

PRECISION_ATTRIBUTE = "_hf_beit_precision"
CACHE_ATTRIBUTE = "_hf_beit_packed"
PRECISIONS = ("fp32", "bf16", "int8", "none")


class PackCache(dict):
    """Per-module store of packed weights; never copied, pickled or saved (rebuilt on demand)."""

    def __deepcopy__(self, memo) -> PackCache:
        return PackCache()

    def __reduce__(self):
        return (PackCache, ())


def fused_linear(
    x: torch.Tensor, linears: Sequence[nn.Linear] | nn.Linear, activation: str | None = None
) -> torch.Tensor:
    """``act(x @ cat(W_i).T + cat(b_i))`` for ``linears`` that share the input ``x`` (missing biases are zero).

    ``activation`` is a transformers activation name (``config.hidden_act``); GELU and ReLU are fused into the
    GEMM on the packed paths. The precision comes from ``optimize_for_inference`` (default ``"fp32"``); CPU
    bf16 autocast and bf16 inputs select the bf16 kernels.
    """
    linears = (linears,) if isinstance(linears, nn.Module) else tuple(linears)
    precision = _inference_precision(x, linears)
    if precision is None:
        weight, bias = concatenated_parameters(linears)
        return _activate(F.linear(x, weight, bias), activation)
    return _packed_for(linears, precision).apply(x, activation)


def concatenated_parameters(linears: Sequence[nn.Linear]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stacked ``(sum out, in)`` weight and bias (zeros where a module has none; None if no module has one)."""
    if len(linears) == 1:
        return linears[0].weight, linears[0].bias
    weight = torch.cat([linear.weight for linear in linears])
    if all(linear.bias is None for linear in linears):
        return weight, None
    biases = [
        linear.bias if linear.bias is not None else linear.weight.new_zeros(linear.out_features) for linear in linears
    ]
    return weight, torch.cat(biases)


def _inference_precision(x: torch.Tensor, linears: tuple[nn.Linear, ...]) -> str | None:
    """The packed precision to use for this call, or None for the plain autograd-friendly path."""
    requested = getattr(linears[0], PRECISION_ATTRIBUTE, "fp32")
    if requested == "none" or x.device.type != "cpu" or torch.compiler.is_compiling():
        return None
    tensors = [x, *(p for m in linears for p in m.parameters())]
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return None
    if requested == "int8":
        return "int8" if int8_engine() is not None else None
    if not onednn_available():
        return None
    autocast_bf16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    if requested == "bf16" or autocast_bf16 or x.dtype == torch.bfloat16:
        return "bf16" if bf16_available() else None
    return "fp32" if x.dtype == torch.float32 else None


def _version_key(tensors: list[torch.Tensor | None], precision: str) -> tuple:
    key = [precision]
    for tensor in tensors:
        if tensor is None:
            key.append(None)
            continue
        try:
            version = tensor._version
        except RuntimeError:  # inference tensors have no version counter
            version = -1
        key.append((tensor.data_ptr(), version, tensor.dtype, tuple(tensor.shape)))
    return tuple(key)


def _packed_for(linears: tuple[nn.Linear, ...], precision: str) -> PackedLinear:
    cache = linears[0].__dict__.get(CACHE_ATTRIBUTE)
    if cache is None:
        cache = PackCache()
        linears[0].__dict__[CACHE_ATTRIBUTE] = cache
    slot = tuple(id(linear) for linear in linears)
    key = _version_key([t for m in linears for t in (m.weight, m.bias)], precision)
    entry = cache.get(slot)
    if entry is None or entry[0] != key:
        with torch.no_grad():
            weight, bias = concatenated_parameters(linears)
            entry = (key, pack(weight, bias, precision))
        cache[slot] = entry
    return entry[1]
