"""OpenVINO backend of :func:`~hf_beit.export.compile_for_engine`: convert, optionally quantise, compile per batch.

* The graph comes straight from ``torch.export`` (``openvino.convert_model(ExportedProgram)``) of the engine-ready
  copy (:mod:`hf_beit.export.engine_graph`: q, k, v as three GEMMs), whose attention matmuls, bias and softmax the
  CPU plugin fuses into one attention kernel per block.
* Each batch size gets its own compiled model with a static shape (compiled on first use, ~1-3 s for BEiT-base,
  at most ``MAX_COMPILED`` kept): static shapes let the CPU plugin plan memory and pick kernels once.
* ``bf16``: OpenVINO's bf16 inference precision, which runs in bf16 every node upstream of a GEMM or convolution
  and keeps the rest (the graph's tail) in fp32. With the fp32 classifier (``fp32_head=True``, the default) that
  tail reaches back along the residual adds, so the residual stream stays fp32 as in hf_beit's eager bf16 mode
  (:mod:`hf_beit.export.engine_graph`); with ``fp32_head=False`` everything but the logits runs bf16. The CPU
  plugin no longer honours per-node fp32 markings set from Python, and explicit bf16 conversions around the GEMMs
  measured 2.6x slower (separate convert kernels), so no finer split is offered.
* ``int8``: NNCF post-training quantisation with activation ranges calibrated on the images given
  (``calibration``), transformer preset (SmoothQuant, fp32 LayerNorm/Softmax), symmetric activations
  (``PERFORMANCE``: on a 2-core AMX Xeon 1.03x the speed of asymmetric ``MIXED`` at batch 8, max logit difference
  0.028 vs 0.033, same top-1 agreement), per-channel int8 weights. The patch embedding (a strided
  convolution, 0.7% of the FLOPs) is left unquantised: quantising its input and weights was the largest error
  measured (max logit difference 0.126 with it, 0.031 without; top-1 agreement 97.3% -> 98.2% on the bench
  photos). The operations left unquantised run in bf16 where the CPU has it (OpenVINO's own default there), else
  fp32.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import TextIO

import numpy as np
import torch

from ..acceleration import bf16_available
from ._optional import require

MAX_COMPILED = 4


class OpenVinoBackend:
    """Compiled OpenVINO models of one ``openvino.Model``, one per batch size; ``run(array) -> [outputs]``.

    ``from_program`` converts a ``torch.export`` program and quantises it for int8; the constructor takes a model
    converted elsewhere (the benchmarks build the peers' models that way).
    """

    def __init__(self, model, precision: str, threads: int, timings: dict[str, float] | None = None) -> None:
        self._ov = require("openvino", "The OpenVINO engine", extra="openvino")
        self.model = model
        self.precision = precision
        self.threads = threads
        self.timings: dict[str, float] = dict(timings or {})
        self._core = self._ov.Core()
        self._compiled: OrderedDict[int, object] = OrderedDict()

    @classmethod
    def from_program(cls, program: torch.export.ExportedProgram, precision: str, threads: int,
                     calibration: np.ndarray | None = None, progress: bool = True) -> OpenVinoBackend:
        """Convert ``program`` (int8: then quantise it with NNCF on ``calibration``) and wrap it."""
        ov = require("openvino", "The OpenVINO engine", extra="openvino")
        start = time.perf_counter()
        model = ov.convert_model(program)
        timings = {"convert": time.perf_counter() - start}
        if precision == "int8":
            start = time.perf_counter()
            model = quantize_int8(model, calibration, progress)
            timings["quantize"] = time.perf_counter() - start
        return cls(model, precision, threads, timings)

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        request = self._request(array.shape[0])
        request.infer({0: array})
        return [request.get_output_tensor(index).data.copy() for index in range(len(self.model.outputs))]

    def compile(self, batch: int) -> None:
        """Compile for ``batch`` now (otherwise done on the first call with that batch size)."""
        self._request(batch)

    def _request(self, batch: int):
        if batch in self._compiled:
            self._compiled.move_to_end(batch)
            return self._compiled[batch]
        start = time.perf_counter()
        model = self.model.clone()
        shape = list(model.inputs[0].get_partial_shape())
        model.reshape({model.inputs[0]: [batch, *shape[1:]]})
        compiled = self._core.compile_model(model, "CPU", self.config())
        self._compiled[batch] = compiled.create_infer_request()
        self.timings[f"compile batch {batch}"] = time.perf_counter() - start
        if len(self._compiled) > MAX_COMPILED:
            self._compiled.popitem(last=False)
        return self._compiled[batch]

    def config(self) -> dict[str, object]:
        """The CPU plugin properties: precision, latency hint, threads."""
        low = self.precision == "bf16" or (self.precision == "int8" and bf16_available())
        return {
            "INFERENCE_PRECISION_HINT": "bf16" if low else "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": self.threads,
        }


def quantize_int8(model, calibration: np.ndarray | None, progress: bool = True):
    """NNCF static int8 of an OpenVINO model, activation ranges from ``calibration`` (N images, one per item).

    NNCF's progress bars and messages go to stderr (``progress=False``: nowhere), never to stdout, where a command
    may be writing its results."""
    nncf = require("nncf", "int8 quantisation for OpenVINO", extra="openvino")
    if calibration is None or len(calibration) == 0:
        raise ValueError(
            "precision='int8' on OpenVINO calibrates activation ranges on real inputs: pass calibration= a batch of "
            "preprocessed pixel_values (a few dozen images of the kind the model will see)."
        )
    items = [np.ascontiguousarray(calibration[i : i + 1], dtype=np.float32) for i in range(len(calibration))]
    with _nncf_output(sys.stderr if progress else None):
        return nncf.quantize(
            model,
            nncf.Dataset(items),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(items),
            preset=nncf.QuantizationPreset.PERFORMANCE,
            ignored_scope=nncf.IgnoredScope(types=["Convolution"]),  # the patch embedding: see the module docstring
        )


@contextlib.contextmanager
def _nncf_output(stream: TextIO | None) -> Iterator[None]:
    """Inside the block NNCF's progress bars (rich, on ``sys.stdout``) and its logger write to ``stream`` (``None``:
    nowhere)."""
    from nncf.common.logging import nncf_logger

    with contextlib.ExitStack() as stack:
        if stream is None:
            stream = stack.enter_context(open(os.devnull, "w"))
        handlers = [h for h in nncf_logger.handlers if isinstance(h, logging.StreamHandler)]
        previous = [(handler, handler.stream) for handler in handlers]
        # assigned, not setStream(): that flushes the stream replaced, which may be closed by now
        for handler in handlers:
            handler.stream = stream
        try:
            with contextlib.redirect_stdout(stream):
                yield
        finally:
            for handler, original in previous:
                handler.stream = original
