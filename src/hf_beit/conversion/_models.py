"""Model/config classes used to write and verify repos: hf_beit's when available, else stock transformers'."""

from __future__ import annotations

import importlib

TASK_ARCHITECTURES = {
    "mim": "BeitForMaskedImageModeling",
    "classification": "BeitForImageClassification",
    "segmentation": "BeitForSemanticSegmentation",
    "backbone": "BeitModel",
}
TASKS = ("mim", "classification", "segmentation")


def _resolve(name: str, *, prefer_hf_beit: bool = True):
    modules = ("hf_beit", "transformers") if prefer_hf_beit else ("transformers",)
    for module_name in modules:
        try:
            return getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"Neither hf_beit nor transformers provides {name}.")


def config_class():
    """``hf_beit.BeitConfig`` (falls back to ``transformers.BeitConfig``; same fields and config.json)."""
    return _resolve("BeitConfig")


def model_class(task: str, *, prefer_hf_beit: bool = True):
    """Model class for a task (``mim``, ``classification``, ``segmentation``, ``backbone``)."""
    return _resolve(TASK_ARCHITECTURES[task], prefer_hf_beit=prefer_hf_beit)


def hf_beit_segmentation_available() -> bool:
    """Whether hf_beit's own segmentation model (unilm ``out_indices`` semantics) can be imported."""
    try:
        return hasattr(importlib.import_module("hf_beit"), "BeitForSemanticSegmentation")
    except ImportError:
        return False
