"""Weights converted once into the layout of the fastest CPU kernel for a precision, and how to apply them.

* ``fp32`` / ``bf16``: oneDNN (``torch.ops.mkldnn._linear_pointwise``) with the weight reordered once into
  oneDNN's blocked layout; bias and an element-wise activation (GELU, ReLU) run inside the GEMM. On AVX-512 CPUs
  this beats PyTorch's default fp32 ``F.linear``, which goes to MKL's AVX2 SGEMM on AMD processors.
* ``int8``: dynamic quantisation -- int8 weights with one scale per output channel, activations quantised per
  call (per tensor, unsigned 8 bit) -- through PyTorch's oneDNN quantised engine. Without VNNI (e.g. AVX2-only
  CPUs) the int8 instructions add pairs of products into int16, which saturates (15% relative error measured on a
  random 128 -> 256 linear), so activations then use 7 bits (``reduce_range``), as fbgemm does.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# HF activation name -> oneDNN post-op (attr, algorithm). Other activations run after the GEMM.
FUSED_ACTIVATIONS: dict[str, tuple[str, str]] = {
    "gelu": ("gelu", "none"),  # erf GELU
    "gelu_pytorch_tanh": ("gelu", "tanh"),
    "gelu_new": ("gelu", "tanh"),
    "relu": ("relu", ""),
}


@functools.cache
def onednn_available() -> bool:
    """True when this PyTorch build can run oneDNN linear kernels on this CPU."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        probe = torch.ops.mkldnn._reorder_linear_weight(torch.ones(2, 2), 1)
        torch.ops.mkldnn._linear_pointwise(torch.ones(1, 2), probe, None, "none", [], "")
    except (RuntimeError, NotImplementedError, AttributeError):
        return False
    return True


@functools.cache
def bf16_available() -> bool:
    """True when oneDNN has native bf16 GEMMs on this CPU (AVX-512 BF16 / AMX)."""
    return onednn_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class PrecisionUnavailableError(RuntimeError, ValueError):
    """The precision asked for has no native kernels on this CPU or PyTorch build (a ``ValueError`` too, so the
    command line reports it as a user error)."""


def require_precision(precision: str) -> None:
    """Raise :class:`PrecisionUnavailableError` when ``precision`` cannot run natively here."""
    if precision == "bf16" and not bf16_available():
        raise PrecisionUnavailableError(
            "precision='bf16' needs a CPU with native bf16 (AVX-512 BF16 or AMX) and a oneDNN-enabled PyTorch; this "
            "one has none (bf16 would be emulated, or silently run as fp32 by OpenVINO). Use 'fp32' or 'int8'."
        )
    if precision == "int8" and int8_engine() is None:
        raise PrecisionUnavailableError(
            "precision='int8' needs a PyTorch build with a quantised engine (onednn, x86 or fbgemm)."
        )


def _cpu_has(probe_name: str) -> bool:
    """One of ``torch.cpu``'s private feature probes (torch 2.x); a probe that is absent counts as no."""
    probe = getattr(torch.cpu, probe_name, None)
    return bool(probe is not None and probe())


# read once at import: torch.compile cannot trace the probes. _is_vnni_supported checks AVX-512 VNNI.
_AMX, _VNNI = _cpu_has("_is_amx_tile_supported"), _cpu_has("_is_vnni_supported")


def amx_available() -> bool:
    """True when this CPU has AMX tiles (Intel Xeon 4th generation and newer), where oneDNN's bf16 and int8 GEMMs
    and PyTorch's CPU flash attention use them."""
    return _AMX


@functools.cache
def int8_engine() -> str | None:
    """The quantised engine used for int8 (``onednn`` preferred, then ``x86``/``fbgemm``), or None."""
    engines = torch.backends.quantized.supported_engines
    for name in ("onednn", "x86", "fbgemm"):
        if name in engines:
            return name
    return None


@dataclass
class PackedLinear:
    """A weight (and bias) ready for one kernel; ``apply(x, activation)`` computes ``act(x @ W.T + b)``."""

    precision: str
    weight: object
    bias: torch.Tensor | None
    reduce_range: bool = False

    def apply(self, x: torch.Tensor, activation: str | None = None) -> torch.Tensor:
        if self.precision == "int8":
            return _activate(torch.ops.quantized.linear_dynamic(x.float(), self.weight, self.reduce_range), activation)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        fused = FUSED_ACTIVATIONS.get(activation) if activation else None
        attr, algorithm = fused or ("none", "")
        out = torch.ops.mkldnn._linear_pointwise(x.to(dtype), self.weight, self.bias, attr, [], algorithm)
        return out if fused else _activate(out, activation)


def _activate(x: torch.Tensor, activation: str | None) -> torch.Tensor:
    if not activation:
        return x
    if activation == "gelu":
        return F.gelu(x)
    from transformers.activations import ACT2FN

    return ACT2FN[activation](x)


def pack(weight: torch.Tensor, bias: torch.Tensor | None, precision: str) -> PackedLinear:
    """Convert a dense ``(out, in)`` weight (and bias) for ``precision`` in {"fp32", "bf16", "int8"}."""
    weight = weight.detach().float()
    bias = None if bias is None else bias.detach().float()
    if precision == "int8":
        return PackedLinear("int8", _pack_int8(weight, bias), None, reduce_range=_int8_reduce_range())
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    packed = torch.ops.mkldnn._reorder_linear_weight(weight.to(dtype).contiguous(), None)
    return PackedLinear(precision, packed, None if bias is None else bias.to(dtype).contiguous())


def _int8_reduce_range() -> bool:
    """7-bit activations unless oneDNN runs int8 on VNNI (no int16 intermediate sums to saturate)."""
    return int8_engine() != "onednn" or not _VNNI


def _pack_int8(weight: torch.Tensor, bias: torch.Tensor | None):
    scales = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-12).double()
    zero_points = torch.zeros(weight.shape[0], dtype=torch.long)
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = int8_engine()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # quantised-tensor creation is deprecated upstream but still the API
            qweight = torch.quantize_per_channel(weight, scales, zero_points, 0, torch.qint8)
            return torch.ops.quantized.linear_prepack(qweight, bias)
    finally:
        torch.backends.quantized.engine = previous
