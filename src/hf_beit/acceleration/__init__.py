"""Fast CPU inference for hf_beit: oneDNN-packed fp32/bf16 GEMMs, fused qkv and GELU, dynamic int8.

The model code calls :func:`fused_linear` for every transformer GEMM and :func:`attend` for attention;
:func:`optimize_for_inference` picks the precision. See ``benchmarks/results_model.md`` for measured speed-ups.
"""

from ._packing import bf16_available, int8_engine, onednn_available
from .attention import attend
from .linear import PRECISIONS, concatenated_parameters, fused_linear
from .optimize import clear_packed_weights, inference_precision, optimize_for_inference

__all__ = [
    "PRECISIONS",
    "attend",
    "bf16_available",
    "clear_packed_weights",
    "concatenated_parameters",
    "fused_linear",
    "inference_precision",
    "int8_engine",
    "onednn_available",
    "optimize_for_inference",
]
