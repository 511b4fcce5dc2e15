"""Conversion of the original microsoft/unilm BEiT checkpoints into hub-ready repos."""

from __future__ import annotations

from .._lazy import by_module, lazy_attributes

_EXPORTS = by_module({
    "checkpoint": ("OriginalCheckpoint", "load_original_checkpoint"),
    "config_inference": ("CheckpointFacts", "build_config", "inspect_state_dict"),
    "convert": ("ConversionResult", "convert_checkpoint"),
    "convert_repo": ("compare_with_transformers", "convert_transformers_repo"),
    "errors": ("CheckpointError", "ConversionError", "OutputExistsError"),
    "families": ("FAMILIES", "CheckpointFamily"),
    "key_mapping": ("convert_state_dict",),
    "model_card": ("render_model_card",),
    "model_stats": ("ModelStats", "compute_model_stats"),
    "push": ("push_to_hub",),
    "registry": ("RELEASED_CHECKPOINTS", "ReleasedCheckpoint", "get_released_checkpoint"),
    "transformers_repo": ("read_transformers_repo",),
})

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - built from the table above

__getattr__ = lazy_attributes(__name__, _EXPORTS)
