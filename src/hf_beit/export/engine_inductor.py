"""Inductor backend of :func:`~hf_beit.export.compile_for_engine`: ``torch.compile`` with weight freezing.

* What is compiled is the engine-ready copy (:mod:`hf_beit.export.engine_graph`) returning the task's outputs,
  with a static shape per batch size (``dynamic=False``: each new batch size compiles once, ~20-40 s for BEiT-base
  on two cores; torch's recompile limit, 8 by default, bounds how many are kept).
* Freezing (``torch._inductor.config.freezing``) turns the weights into constants, so inductor reorders them once
  into oneDNN's blocked layout and fuses bias and GELU into the GEMMs.
* ``bf16``: bf16 autocast (GEMMs in bf16; LayerNorm, residual stream, pooling and the classifier in fp32), and
  attention as two matmuls around an fp32 softmax (:mod:`hf_beit.acceleration.attention`), which inductor runs
  faster than PyTorch's CPU flash attention. Layer scale is not folded into the weights here: under autocast the
  folded GEMMs measured 3.5x the fp32 error of the unfolded ones (0.035 vs 0.010 on BEiT-base logits).
* ``fp32``: accepted; inductor's frozen fp32 GEMMs go to MKL, which is slow on AMD CPUs (there, eager
  ``optimize_for_inference`` or OpenVINO are faster). ``int8`` is refused.
* It runs on PyTorch's own threads (``torch.set_num_threads``).
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch
from torch import nn


class InductorBackend:
    """A ``torch.compile``-d task module (``pixel_values -> {name: tensor}``); ``run(array) -> [outputs]``."""

    def __init__(self, module: nn.Module, output_names: tuple[str, ...], input_shape: tuple[int, int, int],
                 precision: str, threads: int) -> None:
        if precision not in ("fp32", "bf16"):
            raise ValueError(
                f"engine='inductor' compiles fp32 and bf16, not {precision!r}; int8 is offered by engine='openvino' "
                "(static, calibrated) and engine='onnxruntime' (dynamic)."
            )
        if threads != torch.get_num_threads():
            raise ValueError(
                f"engine='inductor' runs on PyTorch's threads ({torch.get_num_threads()}); call "
                f"torch.set_num_threads({threads}) instead of passing threads={threads}."
            )
        self.precision = precision
        self.output_names = output_names
        self.input_shape = tuple(input_shape)
        self.timings: dict[str, float] = {}
        self._module = module.eval()
        self._compiled = torch.compile(self._module, dynamic=False)
        self._batches: set[int] = set()

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        batch, start = array.shape[0], time.perf_counter()
        with self._context():
            outputs = self._compiled(pixel_values=torch.from_numpy(array))
            arrays = [outputs[name].float().numpy() for name in self.output_names]
        if batch not in self._batches:
            self._batches.add(batch)
            self.timings[f"compile batch {batch}"] = time.perf_counter() - start
        return arrays

    def compile(self, batch: int) -> None:
        """Compile for ``batch`` now (otherwise done on the first call with that batch size)."""
        if batch not in self._batches:
            self.run(np.zeros((batch, *self.input_shape), dtype=np.float32))

    @contextlib.contextmanager
    def _context(self):
        import torch._inductor.config as inductor_config

        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16")
        with inductor_config.patch(freezing=True), torch.inference_mode(), autocast:
            yield
