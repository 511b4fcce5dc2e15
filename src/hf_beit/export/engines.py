"""``compile_for_engine``: a BEiT model compiled by an inference engine (OpenVINO, ONNX Runtime, inductor), called
like the model.

What the engine compiles is hf_beit's model with its graph-level knowledge applied (fused qkv, for ONNX Runtime
three q, k, v GEMMs instead; the relative-position bias as a constant; layer scale folded into the GEMMs, except
for inductor in bf16, see :mod:`hf_beit.export.engine_inductor`; the classifier head kept fp32 in bf16 / int8:
:mod:`hf_beit.export.engine_graph`), at a fixed resolution: OpenVINO and ONNX Runtime get its ``torch.export`` graph
with a dynamic batch, inductor (``torch.compile`` with frozen weights) the module itself, one graph per batch size.
The result is checked against the eager fp32 model on random inputs when it is built (``verify=True``), and
``engine_model(pixel_values=x)`` returns the same ``ModelOutput`` type as the model. OpenVINO and ONNX Runtime are
optional: ``pip install "hf_beit[openvino]"`` or ``"hf_beit[export]"``; inductor comes with PyTorch.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput, SemanticSegmenterOutput

from ..acceleration import require_precision
from ._optional import require
from .engine_graph import engine_ready_copy
from .engine_names import ENGINE_PRECISIONS, ENGINES
from .errors import UnsupportedExportError
from .program import trace_for_export
from .shapes import DYNAMIC
from .tasks import TaskOutputs, infer_task, resolve_outputs, task_module

_OUTPUT_TYPES = {
    "image-classification": ImageClassifierOutput,
    "image-segmentation": SemanticSegmenterOutput,
    "image-feature-extraction": BaseModelOutputWithPooling,
}
# Largest |difference| from the eager fp32 outputs accepted by the build-time check, relative to the outputs' scale.
VERIFY_TOLERANCE = {"fp32": 1e-3, "bf16": 0.15, "int8": 0.3}


class EngineModel:
    """A model compiled by an inference engine: ``engine_model(pixel_values=x)`` -> the task's ``ModelOutput``.

    Attributes: ``engine``, ``precision``, ``task``, ``output_names``, ``config`` (the model's), ``image_size``
    (the fixed ``(height, width)``), ``timings`` (seconds spent exporting, converting, quantising, compiling) and
    ``max_difference`` (largest |difference| from the eager fp32 model in the build-time check, or None).
    """

    def __init__(self, backend, engine: str, precision: str, task: str, output_names: Sequence[str], config,
                 image_size: tuple[int, int]) -> None:
        self.backend = backend
        self.engine, self.precision, self.task = engine, precision, task
        self.output_names = tuple(output_names)
        self.config = config
        self.image_size = image_size
        self.timings: dict[str, float] = {}
        self.max_difference: float | None = None

    def __call__(self, pixel_values: torch.Tensor | np.ndarray, **kwargs):
        """Run the engine; only ``return_dict`` among the model's keyword arguments is accepted."""
        unsupported = sorted(key for key, value in kwargs.items() if key != "return_dict" and value)
        if unsupported:
            raise ValueError(
                f"An engine-compiled model computes {self.output_names} only; {unsupported} are not available."
            )
        outputs = dict(zip(self.output_names, self.run(pixel_values)))
        result = _OUTPUT_TYPES[self.task](**{name: torch.from_numpy(value) for name, value in outputs.items()})
        return result if kwargs.get("return_dict", True) else result.to_tuple()

    def run(self, pixel_values: torch.Tensor | np.ndarray) -> list[np.ndarray]:
        """The raw outputs (numpy arrays, in ``output_names`` order) for a ``(batch, channels, H, W)`` input."""
        array = _as_float32(pixel_values)
        expected = (self.config.num_channels, *self.image_size)
        if array.ndim != 4 or tuple(array.shape[1:]) != expected:
            raise ValueError(
                f"This {self.engine} model was compiled for pixel_values of shape (batch, {expected[0]}, "
                f"{expected[1]}, {expected[2]}); got {tuple(array.shape)}. Resize the images or compile again with "
                "image_size=(H, W)."
            )
        if array.shape[0] == 0:  # engines compile per batch size; an empty batch gets batch 1's outputs, cut to 0
            return [output[:0] for output in self.backend.run(np.zeros((1, *expected), dtype=np.float32))]
        return self.backend.run(array)

    def __repr__(self) -> str:
        height, width = self.image_size
        return (f"EngineModel(engine={self.engine!r}, precision={self.precision!r}, task={self.task!r}, "
                f"input=(batch, {self.config.num_channels}, {height}, {width}), outputs={self.output_names})")


def compile_for_engine(
    model: nn.Module,
    engine: str = "openvino",
    precision: str = "fp32",
    *,
    task: str | None = None,
    image_size: int | Sequence[int] | None = None,
    outputs: Sequence[str] | None = None,
    calibration: torch.Tensor | np.ndarray | None = None,
    threads: int | None = None,
    fp32_head: bool = True,
    verify: bool = True,
    progress: bool = True,
) -> EngineModel:
    """Compile ``model`` (a BEiT task model; the caller's object is not changed) with an inference engine.

    Args:
        engine: ``"openvino"`` (fp32, bf16, int8; needs the ``openvino`` extra), ``"onnxruntime"`` (fp32, dynamic
            int8; needs the ``export`` extra) or ``"inductor"`` (fp32, bf16; ``torch.compile`` with frozen weights,
            compiled once per batch size: :mod:`hf_beit.export.engine_inductor`).
        precision: ``"fp32"``; ``"bf16"`` (bf16 GEMMs and attention, fp32 LayerNorm and residual stream);
            ``"int8"`` (OpenVINO: static int8 calibrated on ``calibration``; ONNX Runtime: dynamic int8).
        task, image_size, outputs: as in :func:`~hf_beit.export.export_program` (fixed resolution, default the
            config's ``image_size``).
        calibration: preprocessed ``pixel_values`` (N, C, H, W) at the compiled resolution: OpenVINO int8 takes its
            activation ranges from them, and the build-time check (``verify``) runs on the first of them.
        threads: engine threads (default ``torch.get_num_threads()``; inductor only runs on that number).
        progress: show the quantiser's progress bars and messages (on stderr); ``False`` hides them.
        fp32_head: bf16 / int8: keep the classifier in fp32 (:class:`~hf_beit.export.engine_graph.PreciseHead`). On
            OpenVINO this also keeps the residual stream fp32, the more precise and slower choice (BEiT-base int8,
            AMX Xeon: top-1 agreement with fp32 98.6% vs 95.8%; 5-21% slower in two bench runs); ``False`` lets the
            engine lower the head with the rest.
        verify: compare with the eager fp32 model on random inputs (batch 1 and 2; inductor: batch 1) and raise if
            they differ by more than ``VERIFY_TOLERANCE[precision]`` times the outputs' largest magnitude.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}.")
    if precision not in ENGINE_PRECISIONS:
        raise ValueError(f"precision must be one of {ENGINE_PRECISIONS}, got {precision!r}.")
    if image_size == DYNAMIC:
        raise UnsupportedExportError("Engines compile a fixed resolution: pass image_size=None, H or (H, W).")
    threads = torch.get_num_threads() if threads is None else _thread_count(threads)
    if engine == "openvino":
        require("openvino", "The OpenVINO engine", extra="openvino")
        if precision == "int8":
            require("nncf", "int8 quantisation for OpenVINO", extra="openvino")
    elif engine == "onnxruntime":
        from .engine_onnxruntime import check_precision

        check_precision(precision)
        require("onnxruntime", "The ONNX Runtime engine")
    else:
        from .engine_inductor import check_arguments

        check_arguments(precision, threads)
    if precision == "bf16":
        require_precision("bf16")
    task = infer_task(model) if task is None else task
    module = task_module(model, task)
    names = resolve_outputs(module, task, outputs)
    timings, start = {}, time.perf_counter()
    size = _fixed_size(module.config, image_size)
    if calibration is not None:
        calibration = checked_calibration(calibration, (module.config.num_channels, *size))
    grid = (size[0] // module.config.patch_size_2d[0], size[1] // module.config.patch_size_2d[1])
    # inductor compiles under autocast, where folding the layer scale costs precision (engine_inductor)
    fold_scale = engine != "inductor" or precision == "fp32"
    prepared = engine_ready_copy(module, grid, precise_head=fp32_head and precision != "fp32", fold_scale=fold_scale,
                                 separate_qkv=engine != "inductor")
    if engine == "inductor":
        from .engine_inductor import InductorBackend

        reference = TaskOutputs(prepared, names).eval()
        backend = InductorBackend(reference, names, (module.config.num_channels, *size), precision, threads)
        checked_batches = (1,)  # each batch size is its own compilation
    else:
        traced = trace_for_export(prepared, task, batch=DYNAMIC, image_size=size, outputs=names)
        timings["torch.export"] = time.perf_counter() - start
        reference = traced.reference
        backend = _backend(engine, traced, precision, threads, calibration, progress)
        checked_batches = (1, 2)
    timings.update(backend.timings)
    compiled = EngineModel(backend, engine, precision, task, names, module.config, size)
    if verify:
        compiled.max_difference = _verify(compiled, reference, size, calibration, checked_batches)
    timings.update(backend.timings)
    compiled.timings = timings
    return compiled


def _thread_count(threads) -> int:
    """``threads`` as a Python int >= 1 (NumPy integers too); a ValueError for anything else."""
    try:
        count = None if isinstance(threads, bool) else operator.index(threads)
    except TypeError:
        count = None
    if count is None or count < 1:
        raise ValueError(f"threads must be a positive whole number (or None for PyTorch's), got {threads!r}.")
    return count


def _backend(engine: str, traced, precision: str, threads: int, calibration, progress: bool):
    if engine == "openvino":
        from .engine_openvino import OpenVinoBackend

        return OpenVinoBackend.from_program(traced.program, precision, threads, calibration=calibration,
                                            progress=progress)
    from .engine_onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(traced, precision, threads)


def _fixed_size(config, image_size) -> tuple[int, int]:
    if image_size is None:
        return tuple(config.image_size_2d)
    sizes = (image_size,) if isinstance(image_size, int) else tuple(image_size)
    return (sizes[0], sizes[-1])


def _verify(compiled: EngineModel, reference: nn.Module, size: tuple[int, int], calibration=None,
            batches: Sequence[int] = (1, 2)) -> float:
    """Largest |difference| from the eager fp32 reference at ``batches`` (raises if too big).

    The inputs are random, or the first calibration images when given (int8 ranges only fit inputs like those).
    """
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for batch in batches:
        if calibration is not None and len(calibration) >= batch:
            pixels = torch.as_tensor(_as_float32(calibration[:batch]))
        else:
            pixels = torch.randn(batch, compiled.config.num_channels, *size, generator=generator)
        with torch.no_grad():
            expected = reference(pixel_values=pixels)
        for name, actual in zip(compiled.output_names, compiled.run(pixels)):
            wanted = expected[name].numpy()
            difference = float(np.abs(actual - wanted).max())
            scale = float(np.abs(wanted).max()) or 1.0
            if difference > VERIFY_TOLERANCE[compiled.precision] * scale:
                raise RuntimeError(
                    f"The {compiled.engine} {compiled.precision} model's {name!r} differs from the eager model by "
                    f"{difference:.3g} (outputs up to {scale:.3g}) at batch {batch}; please report this."
                )
            worst = max(worst, difference)
    return worst


def checked_calibration(calibration, shape: tuple[int, int, int]) -> np.ndarray:
    """``calibration`` as a float32 ``(N, *shape)`` array, or a ValueError saying what is wrong with it."""
    wanted = f"preprocessed pixel_values of shape (N, {', '.join(map(str, shape))})"
    if not isinstance(calibration, (torch.Tensor, np.ndarray)):
        raise ValueError(f"calibration must be {wanted} (a tensor or array, e.g. the image processor's output); "
                         f"got a {type(calibration).__name__}.")
    if not (calibration.dtype.is_floating_point if isinstance(calibration, torch.Tensor)
            else np.issubdtype(calibration.dtype, np.floating)):
        raise ValueError(f"calibration must be {wanted}, normalised floats as the image processor returns them; got "
                         f"{calibration.dtype} values (raw pixels?).")
    if calibration.ndim != 4 or tuple(calibration.shape[1:]) != shape or calibration.shape[0] == 0:
        raise ValueError(f"calibration must be {wanted} with N >= 1; got shape {tuple(calibration.shape)}.")
    array = _as_float32(calibration)
    if not np.isfinite(array).all():
        raise ValueError("calibration holds NaN or infinite values.")
    return array


def _as_float32(pixel_values: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(pixel_values, torch.Tensor):
        pixel_values = pixel_values.detach().to("cpu", torch.float32).numpy()
    return np.ascontiguousarray(pixel_values, dtype=np.float32)
