"""Exportable tasks, the named outputs of each, and the module that turns a model into ``pixel_values -> outputs``.

Task names are the pipeline tasks of :mod:`hf_beit.inference`; outputs are named after the fields of the
transformers ``ModelOutput`` the eager model returns, so ``outputs.logits`` and the exported ``logits`` are the
same tensor:

* ``image-classification`` (``BeitForImageClassification``): ``logits`` ``(batch, num_labels)``.
* ``image-segmentation`` (``BeitForSemanticSegmentation``, UPerNet): ``logits``
  ``(batch, num_labels, 4 * height / patch, 4 * width / patch)`` (a quarter of the input for 16-pixel patches),
  not upsampled (as the eager model).
* ``image-feature-extraction`` (``BeitModel``, or the encoder of any BEiT model): ``last_hidden_state``
  ``(batch, 1 + num_patches, hidden_size)`` (CLS first, then the patches in row-major order, after the final
  LayerNorm) and ``pooler_output`` ``(batch, hidden_size)`` (LayerNorm of the mean patch token for mean-pooling
  models, else the CLS token); either or both.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..inference._loading import TASKS, model_class_for_task
from .errors import UnsupportedExportError

TASK_OUTPUTS: dict[str, tuple[str, ...]] = {
    "image-classification": ("logits",),
    "image-segmentation": ("logits",),
    "image-feature-extraction": ("last_hidden_state", "pooler_output"),
}
INPUT_NAME = "pixel_values"


def check_task(task: str) -> str:
    """``task`` if it is exportable, else an error listing the tasks."""
    if task not in TASK_OUTPUTS:
        raise UnsupportedExportError(f"Unknown export task {task!r}; choose one of: {', '.join(TASKS)}.")
    return task


def infer_task(model: nn.Module) -> str:
    """The task a model instance serves (a bare ``BeitModel`` -> ``image-feature-extraction``)."""
    for task in TASKS:
        if isinstance(model, model_class_for_task(task)):
            return task
    raise UnsupportedExportError(
        f"Cannot tell which task to export for a {type(model).__name__}; pass task= one of: {', '.join(TASKS)} "
        "(image-feature-extraction exports the encoder of any BEiT model)."
    )


def task_module(model: nn.Module, task: str) -> nn.Module:
    """The part of ``model`` that computes ``task``: the model itself, or its encoder for feature extraction."""
    check_task(task)
    if task == "image-feature-extraction":
        encoder = getattr(model, "base_model", model)
        if isinstance(encoder, model_class_for_task(task)):
            return encoder
    elif isinstance(model, model_class_for_task(task)):
        return model
    raise UnsupportedExportError(
        f"A {type(model).__name__} cannot be exported for {task!r}; that task needs a "
        f"{model_class_for_task(task).__name__} (load the repository with that class or choose another task)."
    )


def resolve_outputs(module: nn.Module, task: str, outputs: Sequence[str] | None = None) -> tuple[str, ...]:
    """The output names to export: ``outputs`` checked against the task, or every output the module has."""
    available = tuple(name for name in TASK_OUTPUTS[task] if _has_output(module, name))
    if outputs is None:
        return available
    chosen = tuple(dict.fromkeys(outputs))
    unknown = [name for name in chosen if name not in available]
    if unknown or not chosen:
        detail = " (this BeitModel was built without a pooling layer)" if "pooler_output" in unknown else ""
        raise UnsupportedExportError(
            f"Outputs {unknown or list(chosen)} are not available for {task!r}{detail}; choose from: "
            f"{', '.join(available)}."
        )
    return chosen


def _has_output(module: nn.Module, name: str) -> bool:
    return name != "pooler_output" or getattr(module, "pooler", None) is not None


class TaskOutputs(nn.Module):
    """``forward(pixel_values) -> {name: tensor}``: the named outputs of one task model, nothing else.

    Position encodings are interpolated when the input resolution is not the configured one (a fixed export
    resolution bakes that in; the configured resolution takes the model's usual path).
    """

    def __init__(self, model: nn.Module, output_names: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.output_names = tuple(output_names)

    def forward(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        result = self.model(
            pixel_values=pixel_values,
            interpolate_pos_encoding=True,
            output_attentions=False,
            output_hidden_states=False,
            return_dict=True,
        )
        return {name: result[name] for name in self.output_names}
