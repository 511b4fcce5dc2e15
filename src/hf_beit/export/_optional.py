"""Lazy imports of the optional export and engine dependencies, with an error that says how to install them."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExportDependencyError


def require(name: str, purpose: str, extra: str = "export") -> ModuleType:
    """Import ``name`` (``onnx``, ``onnxruntime``, ``openvino``, ``nncf``...) or raise an error naming the extra."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name and not (error.name or "").startswith(name + "."):
            raise
        raise MissingExportDependencyError(
            f"{purpose} needs the {name!r} package, which is not installed. "
            f'Install the {extra} extras: pip install "hf_beit[{extra}]"',
            name=name,
        ) from error
