"""Exceptions raised when exporting a model or running an exported one."""

from __future__ import annotations


class UnsupportedExportError(ValueError):
    """The requested export is not possible for this model (task, outputs, batch or resolution)."""


class MissingExportDependencyError(ModuleNotFoundError):
    """onnx, onnxscript or onnxruntime is not installed (they come with ``pip install "hf_beit[export]"``)."""
