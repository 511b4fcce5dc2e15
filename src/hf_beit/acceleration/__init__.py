"""Fast CPU inference for hf_beit: oneDNN-packed fp32/bf16 GEMMs, fused qkv and GELU, dynamic int8.

The model code calls :func:`fused_linear` for every transformer GEMM and :func:`attend` for attention; both pick
the kernel per call and never bypass a wrapped or hooked module. :func:`optimize_for_inference` picks the
precision, :func:`record_kernels` reports what ran. See ``benchmarks/results_model.md`` for measured speed-ups.
"""

from ._packing import (
    PrecisionUnavailableError,
    amx_available,
    bf16_available,
    int8_engine,
    onednn_available,
    require_precision,
)
from .attention import attend
from .linear import PRECISIONS, UsesFusedLinears, concatenated_parameters, fused_linear
from .optimize import clear_packed_weights, inference_precision, optimize_for_inference
from .recording import KernelRecord, record_kernels

__all__ = [
    "PRECISIONS",
    "KernelRecord",
    "PrecisionUnavailableError",
    "UsesFusedLinears",
    "amx_available",
    "attend",
    "bf16_available",
    "clear_packed_weights",
    "concatenated_parameters",
    "fused_linear",
    "inference_precision",
    "int8_engine",
    "onednn_available",
    "optimize_for_inference",
    "record_kernels",
    "require_precision",
]
