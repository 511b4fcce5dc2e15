"""Conversion of the original microsoft/unilm BEiT checkpoints into hub-ready repos."""

from .checkpoint import OriginalCheckpoint, load_original_checkpoint
from .config_inference import CheckpointFacts, build_config, inspect_state_dict
from .convert import ConversionResult, convert_checkpoint
from .convert_repo import compare_with_transformers, convert_transformers_repo
from .errors import CheckpointError, ConversionError, OutputExistsError
from .families import FAMILIES, CheckpointFamily
from .key_mapping import convert_state_dict
from .model_card import render_model_card
from .model_stats import ModelStats, compute_model_stats
from .push import push_to_hub
from .registry import RELEASED_CHECKPOINTS, ReleasedCheckpoint, get_released_checkpoint
from .transformers_repo import read_transformers_repo

__all__ = [
    "FAMILIES",
    "RELEASED_CHECKPOINTS",
    "CheckpointError",
    "CheckpointFacts",
    "CheckpointFamily",
    "ConversionError",
    "ConversionResult",
    "ModelStats",
    "OriginalCheckpoint",
    "OutputExistsError",
    "ReleasedCheckpoint",
    "build_config",
    "compare_with_transformers",
    "compute_model_stats",
    "convert_checkpoint",
    "convert_state_dict",
    "convert_transformers_repo",
    "get_released_checkpoint",
    "inspect_state_dict",
    "load_original_checkpoint",
    "push_to_hub",
    "read_transformers_repo",
    "render_model_card",
]
