"""``torch.export`` of a BEiT task model: the reference computation, a dynamic batch, a fixed or dynamic resolution.

What is traced is a deep copy of the model in eval mode, in fp32, with ``optimize_for_inference(copy, "none")``
(plain ``F.linear``; the oneDNN packed-weight kernels of :mod:`hf_beit.acceleration` never reach the graph, which
is checked), under ``torch.no_grad()`` (with autograd on, torch 2.14's decomposition of SDPA with a bias mask
fails in the ONNX exporter: "Cannot view a tensor ... as a tensor with shape ..."). The caller's model is not
modified.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._sympy.numbers import int_oo

from ..acceleration import optimize_for_inference
from .errors import UnsupportedExportError
from .shapes import DYNAMIC, InputSpec, resolve_input_spec
from .tasks import INPUT_NAME, TaskOutputs, check_task, infer_task, resolve_outputs, task_module

AXIS_NAMES = {0: "batch", 2: "height", 3: "width"}


@dataclass
class TracedModel:
    """An exported program with what was asked for: task, output names, input shape and its dynamic ranges."""

    program: torch.export.ExportedProgram
    task: str
    output_names: tuple[str, ...]
    input_spec: InputSpec
    dynamic_ranges: dict[str, tuple[int, int | None]]  # axis name -> (min, max or None)
    reference: TaskOutputs  # the traced copy, still runnable eagerly

    def input_symbols(self) -> dict[str, str]:
        """Symbol of each dynamic input axis in the graph (e.g. ``"s77"``) -> its axis name (``"batch"``)."""
        shape = _input_shape(self.program)
        return {str(shape[axis]): name for axis, name in AXIS_NAMES.items() if isinstance(shape[axis], torch.SymInt)}


def export_program(model: nn.Module, task: str | None = None, **options: Any) -> torch.export.ExportedProgram:
    """Export ``model`` with ``torch.export``: ``program.module()(pixel_values=x)`` returns ``{name: tensor}``.

    Args:
        task: ``image-classification``, ``image-segmentation`` or ``image-feature-extraction`` (default: the
            model's own task; feature extraction works on any BEiT model's encoder).
        options: those of :func:`trace_for_export` -- ``batch`` (``"dynamic"`` or a fixed N), ``image_size``
            (``None``: the config's; H or (H, W), fixed, positions interpolated for it; or ``"dynamic"``, models
            without relative-position tables only) and ``outputs`` (feature extraction: ``last_hidden_state``
            and/or ``pooler_output``; default both).
    """
    return trace_for_export(model, task, **options).program


def trace_for_export(
    model: nn.Module,
    task: str | None = None,
    *,
    batch: int | str = DYNAMIC,
    image_size: int | Sequence[int] | str | None = None,
    outputs: Sequence[str] | None = None,
) -> TracedModel:
    """:func:`export_program` with everything the ONNX writer and verifiers need (see :class:`TracedModel`)."""
    task = infer_task(model) if task is None else check_task(task)
    module = task_module(model, task)
    names = resolve_outputs(module, task, outputs)
    spec = resolve_input_spec(module.config, task, batch, image_size)
    reference = TaskOutputs(reference_copy(module), names).eval()
    example = spec.example(device=_device(module))
    with torch.no_grad():
        # One eager call first: it fails with the model's own message if the input does not fit.
        reference(pixel_values=example)
        program = torch.export.export(
            reference, (), {INPUT_NAME: example}, dynamic_shapes={INPUT_NAME: spec.dynamic_shapes()}, strict=False
        )
    _check_reference_ops(program)
    ranges = _dynamic_ranges(program, spec)
    return TracedModel(program, task, names, spec, ranges, reference)


def reference_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` in eval mode, fp32, on the plain (``"none"``) kernels; ``module`` is untouched."""
    return optimize_for_inference(copy.deepcopy(module).float(), "none")


def graph_operators(program: torch.export.ExportedProgram) -> set[str]:
    """The operators an exported program calls, e.g. ``{"aten.linear.default", ...}``."""
    return {str(node.target) for node in program.graph.nodes if node.op == "call_function"}


def _check_reference_ops(program: torch.export.ExportedProgram) -> None:
    fast_path = sorted(op for op in graph_operators(program) if "mkldnn" in op or "quantized" in op)
    if fast_path:
        raise RuntimeError(f"The exported graph contains fast-path kernels {fast_path}; please report this bug.")


def _input_shape(program: torch.export.ExportedProgram) -> tuple:
    placeholders = {node.name: node for node in program.graph.nodes if node.op == "placeholder"}
    return tuple(placeholders[INPUT_NAME].meta["val"].shape)


def _dynamic_ranges(program: torch.export.ExportedProgram, spec: InputSpec) -> dict[str, tuple[int, int | None]]:
    shape = _input_shape(program)
    dynamic = spec.dynamic_shapes()
    ranges = {}
    for axis, name in AXIS_NAMES.items():
        if axis not in dynamic:
            continue
        if not isinstance(shape[axis], torch.SymInt):
            raise UnsupportedExportError(
                f"torch.export fixed the {name} axis to {shape[axis]} although it was declared dynamic; export "
                f"with a fixed {name} instead."
            )
        bounds = program.range_constraints[shape[axis].node.expr]
        upper = None if bounds.upper == int_oo else int(bounds.upper)
        ranges[name] = (int(bounds.lower), upper)
    return ranges


def _device(module: nn.Module) -> torch.device:
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")
