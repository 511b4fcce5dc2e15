"""Build the model to fine-tune: from scratch, or initialised from a saved checkpoint of any task.

The checkpoint is fitted to the new task with :mod:`hf_beit.retargeting` -- the same code the converter uses for
``--task``/``--image-size`` -- so a MIM checkpoint gets its shared relative table copied into every layer, tables
are resized for a new image size, and a head that does not fit the new label set is replaced (with a warning).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file

from .. import BeitConfig
from ..hub import resolve_model_dir
from ..retargeting import RetargetingError, retarget_config, retarget_state_dict
from ..tasks import get_task

logger = logging.getLogger(__name__)

TRAINABLE_TASKS = ("classification", "segmentation")


class InitCheckpointError(ValueError):
    """The checkpoint to initialise a fine-tuning run from is missing or does not fit the model."""


def read_state_dict(model_dir: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a saved model (folder or Hub id): ``model.safetensors`` (single or sharded) or
    ``pytorch_model.bin`` (read with ``weights_only=True``)."""
    model_dir = resolve_model_dir(model_dir)
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
    raise InitCheckpointError(
        f"No model.safetensors or pytorch_model.bin in {model_dir}; pass a saved model directory."
    )


def finetune_config(checkpoint_dir: str | Path, task: str, id2label: dict[int, str], **overrides) -> BeitConfig:
    """The config for fine-tuning ``checkpoint_dir`` on ``task`` with the labels ``id2label``."""
    try:
        source = BeitConfig.from_pretrained(str(resolve_model_dir(checkpoint_dir)))
        return retarget_config(source, task, id2label=id2label, **overrides)
    except RetargetingError as error:
        raise InitCheckpointError(f"Cannot fine-tune {checkpoint_dir} for {task}: {error}") from error


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
    if task not in TRAINABLE_TASKS:
        raise ValueError(f"task must be one of {', '.join(TRAINABLE_TASKS)}, got {task!r}.")
    model = get_task(task).model_class(config)
    if init_from is None:
        _scale_new_head(model, task, head_init_scale)
        return model
    init_from = resolve_model_dir(init_from)
    checkpoint_config = BeitConfig.from_pretrained(str(init_from))
    try:
        retargeted = retarget_state_dict(read_state_dict(init_from), checkpoint_config, model.config)
    except RetargetingError as error:
        raise InitCheckpointError(f"Checkpoint {init_from} does not fit the {task} model: {error}") from error
    for note in retargeted.notes:
        logger.info(note)
    for warning in retargeted.warnings:
        logger.warning(warning)
    model.load_state_dict(retargeted.state_dict, strict=False)
    backbone_new = [key for key in retargeted.new_keys if not key.startswith(get_task(task).head_prefixes)]
    if backbone_new:
        logger.warning("Backbone parameters not in the checkpoint (kept at their initial values): %s", backbone_new)
    if "classifier.weight" in retargeted.new_keys:
        logger.info("Initialising a new %s head for %d labels.", task, config.num_labels)
        _scale_new_head(model, task, head_init_scale)
    return model
