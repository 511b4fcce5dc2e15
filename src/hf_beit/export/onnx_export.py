"""ONNX export through ``torch.export`` (torch 2.14's dynamo exporter, onnxscript), one file per model.

The TorchScript exporter is not used: it refuses UPerNet's pyramid pooling at non-divisible sizes, turns the
model's Python shape checks into constants, and failed on a relative-position classifier under ``no_grad`` with an
internal assert. The graph is first exported with :func:`~hf_beit.export.program.trace_for_export` (fixed or
dynamic axes declared with ``torch.export.Dim``, checked after tracing), then translated.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..atomic_io import atomic_file
from ._optional import require
from .program import TracedModel, trace_for_export
from .shapes import DYNAMIC

METADATA_KEY = "hf_beit"  # JSON: task, outputs, input sizes and their ranges (read by OnnxRunner)
_SINGLE_FILE_LIMIT = 1_800_000_000  # bytes of weights; protobuf files cannot exceed 2 GiB


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    task: str | None = None,
    *,
    batch: int | str = DYNAMIC,
    image_size: int | Sequence[int] | str | None = None,
    outputs: Sequence[str] | None = None,
    opset: int | None = None,
) -> Path:
    """Write ``model`` as an ONNX file at ``path`` (input ``pixel_values``, outputs named as in ``ModelOutput``).

    ``task``, ``batch``, ``image_size`` and ``outputs`` as in :func:`~hf_beit.export.export_program`; ``opset``
    defaults to the exporter's (20 with torch 2.14). Dynamic axes are named ``batch``, ``height``, ``width``.
    The file is written atomically; weights above ~1.8 GB go to ``<path>.data`` beside it.
    """
    _require_exporter()
    traced = trace_for_export(model, task, batch=batch, image_size=image_size, outputs=outputs)
    return write_onnx(traced, path, opset=opset)


def write_onnx(traced: TracedModel, path: str | os.PathLike, opset: int | None = None) -> Path:
    """Translate an already traced model to ONNX and save it (see :func:`export_onnx`)."""
    _require_exporter()
    with torch.no_grad():
        onnx_program = torch.onnx.export(
            traced.program, dynamo=True, opset_version=opset, output_names=list(traced.output_names), verbose=False
        )
    _name_dynamic_axes(onnx_program.model, traced.input_symbols())
    fold_weight_layout(onnx_program.model)
    onnx_program.model.metadata_props[METADATA_KEY] = json.dumps(export_metadata(traced))
    target = Path(path)
    if _weight_bytes(traced.program) > _SINGLE_FILE_LIMIT:
        target.parent.mkdir(parents=True, exist_ok=True)
        onnx_program.save(target, external_data=True)
        return target
    with atomic_file(target) as tmp:
        onnx_program.save(tmp, external_data=False)
    return target


# op types that only rearrange their inputs' elements: folding them never stores more than their inputs held
_REARRANGING_OPS = frozenset({"Concat", "Transpose", "Reshape", "Squeeze", "Unsqueeze"})
_SMALL_CONSTANT = 8192  # elements: shape vectors and the like, which may be shared (onnxscript's own input limit)


def fold_weight_layout(model) -> None:
    """Fold, in place, constant rearrangements of weights (the fused qkv's ``Transpose(Concat(Wq, Wk, Wv))`` and its
    bias ``Concat``) into initializers, so every GEMM in the file reads its weight directly.

    The exporter leaves them as nodes (its folder stops at 262144 output elements). ONNX Runtime folds them when a
    session starts, but tools that rewrite a GEMM by its weight initializer do not: ``quantize_dynamic`` kept the
    qkv GEMMs in fp32 (BEiT-base batch 8 int8: 6.3 -> 7.6 img/s once folded, same top-1 agreement). Only nodes whose
    large inputs have no other reader are folded, so the file does not grow.
    """
    from onnxscript.optimizer import fold_constants

    def rearranges_unshared_weights(node) -> bool:
        return node.domain == "" and node.op_type in _REARRANGING_OPS and all(
            value is None or len(value.consumers()) == 1 or value.const_value.size <= _SMALL_CONSTANT
            for value in node.inputs
        )

    weights = sum(value.const_value.size for value in model.graph.initializers.values()
                  if value.const_value is not None)
    fold_constants(model, output_size_limit=max(weights, 1), should_fold=rearranges_unshared_weights)


def export_metadata(traced: TracedModel) -> dict:
    """What the ONNX file records about itself: task, outputs, fixed sizes (None = dynamic) and dynamic ranges."""
    from .. import __version__

    spec = traced.input_spec
    return {
        "task": traced.task,
        "outputs": list(traced.output_names),
        "batch": spec.batch,
        "num_channels": spec.num_channels,
        "height": spec.height,
        "width": spec.width,
        "patch_size": list(spec.patch_size),
        "dynamic_ranges": {name: list(bounds) for name, bounds in traced.dynamic_ranges.items()},
        "hf_beit_version": __version__,
    }


def _require_exporter() -> None:
    for name in ("onnx", "onnxscript"):
        require(name, "ONNX export")


def _name_dynamic_axes(model, symbols: dict[str, str]) -> None:
    """Rename the exporter's symbols (``s77``, ``8*s87``) to the axis names everywhere in the graph."""
    ir = require("onnx_ir", "ONNX export")
    grid_symbols = {}
    for expression, name in symbols.items():
        for symbol in re.findall(r"\bs\d+\b", expression):
            grid_symbols[symbol] = name if expression == symbol else f"grid_{name}"
    whole = {re.sub(r"\bs\d+\b", lambda m: grid_symbols[m.group()], e): n for e, n in symbols.items()}

    def rename(text: str) -> str:
        text = re.sub(r"\bs\d+\b", lambda m: grid_symbols.get(m.group(), m.group()), text)
        return whole.get(text, text)

    graph = model.graph
    values = [*graph.inputs, *graph.outputs, *(value for node in ir.traversal.RecursiveGraphIterator(graph)
                                                 for value in node.outputs)]
    for value in values:
        if value.shape is None:
            continue
        dims = [ir.SymbolicDim(rename(dim.value)) if isinstance(dim, ir.SymbolicDim) and dim.value else dim
                for dim in value.shape]
        value.shape = ir.Shape(dims)


def _weight_bytes(program: torch.export.ExportedProgram) -> int:
    tensors = [*program.state_dict.values(), *program.constants.values()]
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))
