"""Inductor backend of :func:`~hf_beit.export.compile_for_engine`: ``torch.compile`` with weight freezing.

* What is compiled is the engine-ready copy (:mod:`hf_beit.export.engine_graph`) returning the task's outputs, as
  one graph (``fullgraph=True``) with a static shape per batch size: each new batch size compiles once (~10-25 s
  for BEiT-base on two cores), up to ``MAX_BATCH_SIZES``; after that a batch is zero-padded to the smallest compiled
  size that holds it, or run in chunks of the largest (images are independent in eval mode). Its recompiles are
  counted apart from other compiled code in the process (``isolate_recompiles``).
* Freezing (``torch._inductor.config.freezing``, set during each call only) turns the weights into constants; in
  bf16 inductor then reorders them once into oneDNN's blocked layout and fuses bias and GELU into the GEMMs.
* ``bf16``: bf16 autocast (GEMMs in bf16; LayerNorm, residual stream, pooling and the classifier in fp32), and
  attention as two matmuls around an fp32 softmax on CPUs without AMX, PyTorch's flash attention on CPUs with it
  (whichever measured faster there: :mod:`hf_beit.acceleration.attention`). Layer scale is not folded into
  the weights here: under autocast the folded GEMMs measured 3.5x the fp32 error of the unfolded ones (0.035
  vs 0.010 on BEiT-base logits).
* ``fp32``: accepted; inductor's frozen fp32 GEMMs go to MKL, which is slow on AMD CPUs (there, eager
  ``optimize_for_inference`` or OpenVINO are faster). ``int8`` is refused.
* It runs on PyTorch's own threads (``torch.set_num_threads``); the generated kernels fix that number, so a call
  after it changed is refused.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch
from torch import nn

MAX_BATCH_SIZES = 8


def check_arguments(precision: str, threads: int) -> None:
    """Refuse what this backend cannot do (before any copy or compilation is made)."""
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


class InductorBackend:
    """A ``torch.compile``-d task module (``pixel_values -> {name: tensor}``); ``run(array) -> [outputs]``.

    ``compile_for_engine`` has checked ``precision`` and ``threads`` with :func:`check_arguments` before building it.
    """

    def __init__(self, module: nn.Module, output_names: tuple[str, ...], input_shape: tuple[int, int, int],
                 precision: str, threads: int) -> None:
        self.precision, self.threads = precision, threads
        self.output_names = output_names
        self.input_shape = tuple(input_shape)
        self.timings: dict[str, float] = {}
        self._module = module.eval()
        # the module is this backend's private copy, never changed after this point: its parameters and attributes
        # need no guards (checking them took ~1 ms per call for BEiT-base); the input shape, dtype and grad /
        # autocast state are still guarded
        self._compiled = torch.compile(self._module, dynamic=False, fullgraph=True, isolate_recompiles=True,
                                       recompile_limit=MAX_BATCH_SIZES,
                                       options={"guard_filter_fn": torch.compiler.skip_guard_on_all_nn_modules_unsafe})
        self._batches: set[int] = set()

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        if torch.get_num_threads() != self.threads:
            raise RuntimeError(
                f"This inductor model was compiled for {self.threads} threads and PyTorch now uses "
                f"{torch.get_num_threads()}: call torch.set_num_threads({self.threads}) or compile it again."
            )
        batch = array.shape[0]
        if batch in self._batches or len(self._batches) < MAX_BATCH_SIZES:
            return self._call(array)
        fitting = [size for size in sorted(self._batches) if size >= batch]
        size = fitting[0] if fitting else max(self._batches)
        chunks = [self._call(_padded(array[i : i + size], size)) for i in range(0, batch, size)]
        return [np.concatenate([chunk[index] for chunk in chunks])[:batch] for index in range(len(self.output_names))]

    def compile(self, batch: int) -> None:
        """Compile for ``batch`` now (otherwise done on the first call with that batch size)."""
        if batch not in self._batches:
            self.run(np.zeros((batch, *self.input_shape), dtype=np.float32))

    def _call(self, array: np.ndarray) -> list[np.ndarray]:
        batch, start = array.shape[0], time.perf_counter()
        with self._context():
            outputs = self._compiled(pixel_values=torch.from_numpy(array))
            arrays = [outputs[name].float().numpy() for name in self.output_names]
        if batch not in self._batches:
            self._batches.add(batch)
            self.timings[f"compile batch {batch}"] = time.perf_counter() - start
        return arrays

    @contextlib.contextmanager
    def _context(self):
        import torch._inductor.config as inductor_config

        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16")
        with inductor_config.patch(freezing=True), torch.inference_mode(), autocast:
            yield


def _padded(array: np.ndarray, size: int) -> np.ndarray:
    """``array`` with zero images appended up to ``size`` along the batch axis."""
    if array.shape[0] == size:
        return array
    return np.concatenate([array, np.zeros((size - array.shape[0], *array.shape[1:]), dtype=array.dtype)])
