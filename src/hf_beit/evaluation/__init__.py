"""``hf-beit evaluate MODEL DATA``: a trained model measured on a labelled set, as JSON and pictures."""

from __future__ import annotations

from .._lazy import by_module, lazy_attributes

_EXPORTS = by_module({"run": ("EvaluationResult", "evaluate_model")})

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - built from the table above

__getattr__ = lazy_attributes(__name__, _EXPORTS)
