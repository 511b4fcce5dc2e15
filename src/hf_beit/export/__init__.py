"""Export BEiT models to ONNX and ``torch.export`` for classification, embeddings and segmentation (UPerNet).

``export_onnx(model, "model.onnx")`` / ``export_program(model)`` trace the reference computation (plain
``F.linear``, eval mode, fp32; never the oneDNN fast path) of a copy of the model. Input: ``pixel_values``
``(batch, channels, height, width)``; outputs are named after the eager ``ModelOutput`` fields (see
:mod:`hf_beit.export.tasks`). The batch axis is dynamic by default; the resolution is fixed (any size, positions
interpolated for it) or, for models without relative-position tables, dynamic (multiples of the patch size).
:class:`OnnxRunner` runs a file with onnxruntime and checks the input first.

:func:`compile_for_engine` compiles a model with OpenVINO, ONNX Runtime (fp32, bf16, int8) or inductor
(``torch.compile``; fp32, bf16) and returns a callable with the model's outputs.

ONNX needs the ``export`` extra (onnx, onnxscript, onnxruntime), OpenVINO the ``openvino`` extra (openvino,
nncf); all are imported only when used.
"""

from __future__ import annotations

from .._lazy import by_module, lazy_attributes

_EXPORTS = by_module({
    "engines": ("ENGINES", "ENGINE_PRECISIONS", "EngineModel", "compile_for_engine"),
    "errors": ("MissingExportDependencyError", "UnsupportedExportError"),
    "onnx_export": ("export_onnx",),
    "program": ("export_program", "graph_operators"),
    "runner": ("OnnxRunner",),
    "tasks": ("INPUT_NAME", "TASK_OUTPUTS"),
})

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - built from the table above

__getattr__ = lazy_attributes(__name__, _EXPORTS)
