"""Lazy imports of the optional export dependencies, with an error that says how to install them."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExportDependencyError


def require(name: str, purpose: str) -> ModuleType:
    """Import ``name`` (``onnx``, ``onnxscript``, ``onnxruntime``) or raise an error naming the extra to install."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            raise
        raise MissingExportDependencyError(
            f"{purpose} needs the {name!r} package, which is not installed. "
            'Install the export extras: pip install "hf_beit[export]"',
            name=name,
        ) from error
