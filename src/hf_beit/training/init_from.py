"""Build the model to fine-tune: from scratch, from a MIM checkpoint, or from a checkpoint with another head.

* MIM (pre-training) checkpoints have one shared relative-position table: it is copied into every layer (unilm
  fine-tuning), the MIM head (``layernorm``/``lm_head``) is dropped and a new head is initialised.
* A classification/segmentation checkpoint whose label set differs from the new one gets its head replaced,
  with a log line saying so (instead of a silent ``ignore_mismatched_sizes``).
* If the new image size changes the patch grid, relative tables are resized with unilm's geometric interpolation
  and absolute position embeddings bicubically.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file

from .. import BeitConfig, BeitForImageClassification, BeitForSemanticSegmentation
from ..relative_position_resize import (
    SHARED_TABLE_KEY,
    expand_shared_relative_position_bias,
    resize_absolute_position_embeddings,
    resize_relative_position_bias_table,
)

logger = logging.getLogger(__name__)

# Fine-tuning architecture switches applied to a pre-training config (unilm fine-tuning defaults).
_FINETUNE_FROM_MIM = {
    "use_relative_position_bias": True,
    "use_shared_relative_position_bias": False,
    "use_mask_token": False,
}
_HEAD_PREFIXES = {
    "classification": ("classifier.",),
    "segmentation": ("decode_head.classifier.", "auxiliary_head.classifier."),
}
_POSITION_KEY = "beit.embeddings.position_embeddings"
_UNILM_OUT_INDICES = {12: (3, 5, 7, 11), 24: (7, 11, 15, 23)}
# Keys of a checkpoint config that describe its task (labels, head, feature taps) rather than the backbone.
_DERIVED_CONFIG_KEYS = (
    "id2label",
    "label2id",
    "num_labels",
    "architectures",
    "problem_type",
    "out_features",
    "stage_names",
    "_name_or_path",
    "transformers_version",
)


class CheckpointError(ValueError):
    """The checkpoint to initialise from is missing or incompatible."""


def read_state_dict(model_dir: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a saved model directory: ``model.safetensors`` (single or sharded) or ``pytorch_model.bin``."""
    model_dir = Path(model_dir)
    single, index = model_dir / "model.safetensors", model_dir / "model.safetensors.index.json"
    if single.is_file():
        return load_file(str(single))
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        state_dict: dict[str, torch.Tensor] = {}
        for shard in shards:
            state_dict.update(load_file(str(model_dir / shard)))
        return state_dict
    legacy = model_dir / "pytorch_model.bin"
    if legacy.is_file():
        return torch.load(legacy, map_location="cpu", weights_only=True)
    raise CheckpointError(f"No model.safetensors or pytorch_model.bin in {model_dir}; pass a saved model directory.")


def _is_pretraining_checkpoint(state_dict: dict) -> bool:
    return SHARED_TABLE_KEY in state_dict or any(key.startswith("lm_head.") for key in state_dict)


def finetune_config(
    checkpoint_dir: str | Path, task: str, id2label: dict[int, str], **overrides
) -> tuple[BeitConfig, dict[str, torch.Tensor]]:
    """Config for fine-tuning on ``id2label`` derived from a checkpoint, and the checkpoint's tensors."""
    checkpoint_config = BeitConfig.from_pretrained(str(checkpoint_dir))
    state_dict = read_state_dict(checkpoint_dir)
    values = checkpoint_config.to_dict()
    for key in _DERIVED_CONFIG_KEYS:
        values.pop(key, None)
    if _is_pretraining_checkpoint(state_dict):
        values.update(_FINETUNE_FROM_MIM)
    values.update(overrides)
    if task == "segmentation":
        values["out_indices"] = valid_out_indices(values.get("out_indices"), values["num_hidden_layers"])
    labels = {int(k): v for k, v in id2label.items()}
    config = BeitConfig.from_dict({**values, "id2label": labels, "label2id": {v: k for k, v in labels.items()}})
    return config, state_dict


def valid_out_indices(out_indices: list[int] | None, depth: int) -> list[int]:
    """``out_indices`` if they are 4 valid block ids, else unilm's taps (base [3, 5, 7, 11], large [7, 11, 15, 23])
    or, for other depths, the blocks ending each quarter of the network."""
    if out_indices is not None and len(out_indices) == 4 and all(0 <= i < depth for i in out_indices):
        return list(out_indices)
    if depth in _UNILM_OUT_INDICES:
        return list(_UNILM_OUT_INDICES[depth])
    if depth < 4:
        raise ValueError(f"Segmentation needs at least 4 transformer blocks, the model has {depth}.")
    return [depth // 4 - 1, depth // 2 - 1, 3 * depth // 4 - 1, depth - 1]


def _resize_positions(state_dict: dict, source: BeitConfig, target: BeitConfig) -> dict:
    if source.window_size == target.window_size:
        return state_dict
    logger.info("Resizing position parameters from a %s to a %s patch grid.", source.window_size, target.window_size)
    resized = dict(state_dict)
    for key, value in state_dict.items():
        if key.endswith("relative_position_bias_table"):
            resized[key] = resize_relative_position_bias_table(value, source.window_size, target.window_size)
        elif key == _POSITION_KEY:
            resized[key] = resize_absolute_position_embeddings(value, source.window_size, target.window_size)
    return resized


def _drop_replaced_head(state_dict: dict, model: torch.nn.Module, task: str, checkpoint_config: BeitConfig) -> dict:
    """Remove head tensors that do not fit the new label set, saying so in the log."""
    target = model.state_dict()
    head_keys = [k for k in state_dict if k.startswith(_HEAD_PREFIXES[task])]
    if not head_keys:
        return state_dict
    old_labels = {int(k): v for k, v in (checkpoint_config.id2label or {}).items()}
    new_labels = model.config.id2label
    shape_mismatch = any(k in target and target[k].shape != state_dict[k].shape for k in head_keys)
    if not shape_mismatch and old_labels == new_labels:
        return state_dict
    logger.warning(
        "Replacing the %s head: the checkpoint has %d labels (%s) but this task has %d (%s); the head is "
        "re-initialised and trained from scratch.",
        task,
        len(old_labels),
        _preview(old_labels),
        len(new_labels),
        _preview(new_labels),
    )
    return {k: v for k, v in state_dict.items() if k not in head_keys}


def _preview(labels: dict[int, str], count: int = 5) -> str:
    names = [labels[k] for k in sorted(labels)[:count]]
    return ", ".join(names) + (", ..." if len(labels) > count else "")


def _scale_new_head(model: torch.nn.Module, task: str, scale: float) -> None:
    """unilm's ``init_scale``: multiply a freshly initialised classifier's weight and bias by ``scale``."""
    if task != "classification" or scale == 1.0 or not isinstance(model.classifier, torch.nn.Linear):
        return
    with torch.no_grad():
        model.classifier.weight.mul_(scale)
        model.classifier.bias.mul_(scale)


def build_model(
    task: str,
    config: BeitConfig,
    init_from: str | Path | None = None,
    head_init_scale: float = 0.001,
) -> torch.nn.Module:
    """Instantiate the ``task`` model for ``config`` and load ``init_from`` weights into it (see module docstring).

    Use :func:`finetune_config` to derive ``config`` from the checkpoint first; with ``init_from=None`` the model is
    randomly initialised.
    """
    model_class = {"classification": BeitForImageClassification, "segmentation": BeitForSemanticSegmentation}.get(task)
    if model_class is None:
        raise ValueError(f"task must be 'classification' or 'segmentation', got {task!r}.")
    model = model_class(config)
    if init_from is None:
        _scale_new_head(model, task, head_init_scale)
        return model
    checkpoint_config = BeitConfig.from_pretrained(str(init_from))
    state_dict = read_state_dict(init_from)
    state_dict = {k: v for k, v in state_dict.items() if "relative_position_index" not in k}
    if SHARED_TABLE_KEY in state_dict and not config.use_shared_relative_position_bias:
        logger.info("Copying the shared relative-position table into each of the %d layers.", config.num_hidden_layers)
        state_dict = expand_shared_relative_position_bias(state_dict, config.num_hidden_layers)
    state_dict = _resize_positions(state_dict, checkpoint_config, config)
    state_dict = _drop_replaced_head(state_dict, model, task, checkpoint_config)
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as error:
        raise CheckpointError(f"Checkpoint {init_from} does not fit the {task} model: {error}") from error
    backbone_missing = [k for k in result.missing_keys if k.startswith("beit.") and "pooler" not in k]
    if backbone_missing:
        logger.warning("Backbone parameters not in the checkpoint (kept at their initial values): %s", backbone_missing)
    if result.unexpected_keys:
        logger.info("Checkpoint tensors not used by the %s model: %s", task, result.unexpected_keys)
    if any(k.startswith(_HEAD_PREFIXES[task]) for k in result.missing_keys):
        logger.info("Initialising a new %s head for %d labels.", task, config.num_labels)
        _scale_new_head(model, task, head_init_scale)
    return model
