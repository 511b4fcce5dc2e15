"""ONNX Runtime backend of :func:`~hf_beit.export.compile_for_engine`: the exported file, fully optimised.

The file is hf_beit's own export (separate q, k, v projections, relative bias and layer scale folded, see
:mod:`hf_beit.export.engine_graph`) in a temporary folder, run with all graph optimisations
(``ORT_ENABLE_ALL``: constant folding, LayerNorm/GELU/MatMul+Add fusions). ``int8`` is ONNX Runtime's dynamic
quantisation of the MatMuls (per-channel int8 weights, activations quantised per call). ONNX Runtime's CPU
provider has no bf16 kernels for these operations, so ``bf16`` is refused.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ._optional import require
from .onnx_export import write_onnx
from .program import TracedModel


def check_precision(precision: str) -> None:
    """Refuse bf16 (before any export is made)."""
    if precision == "bf16":
        raise ValueError("ONNX Runtime's CPU provider has no bf16 kernels for BEiT; use engine='openvino'.")


class OnnxRuntimeBackend:
    """An ``onnxruntime.InferenceSession`` on a freshly exported file; ``run(array) -> [outputs]``."""

    def __init__(self, traced: TracedModel, precision: str, threads: int) -> None:
        check_precision(precision)
        ort = require("onnxruntime", "The ONNX Runtime engine")
        self.precision = precision
        self.timings: dict[str, float] = {}
        self._folder = tempfile.TemporaryDirectory(prefix="hf_beit_ort_")
        path = Path(self._folder.name) / "model.onnx"
        start = time.perf_counter()
        write_onnx(traced, path)
        self.timings["onnx export"] = time.perf_counter() - start
        if precision == "int8":
            start = time.perf_counter()
            path = quantize_dynamic_int8(path)
            self.timings["quantize"] = time.perf_counter() - start
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        start = time.perf_counter()
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.timings["session"] = time.perf_counter() - start
        self.input_name = self.session.get_inputs()[0].name

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: array})

    def compile(self, batch: int) -> None:
        """Nothing to do: one session serves every batch size."""


def quantize_dynamic_int8(path: Path) -> Path:
    """ONNX Runtime's dynamic int8 quantisation of ``path``'s MatMuls (per-channel weights); returns the new file."""
    require("onnxruntime", "int8 quantisation for ONNX Runtime")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = path.with_name(path.stem + ".int8.onnx")
    quantize_dynamic(
        str(path), str(target), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"]
    )
    return target
