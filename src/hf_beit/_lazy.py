"""Package attributes imported on first use, so that importing a package (and starting ``hf-beit``) stays fast."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_attributes(package: str, exports: dict[str, str], subpackages: tuple[str, ...] = ()) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``exports[name]`` (a module relative to ``package``) on first access, and
    the ``subpackages`` themselves (``hf_beit.inference.extract_embeddings`` after a bare ``import hf_beit``)."""

    def __getattr__(name: str) -> Any:
        if name in subpackages:
            return importlib.import_module(f".{name}", package)
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{exports[name]}", package), name)

    return __getattr__


def by_module(modules: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """``{module: (names...)}`` -> ``{name: module}``, the table :func:`lazy_attributes` takes."""
    return {name: module for module, names in modules.items() for name in names}
