"""Re-targeting a BEiT checkpoint to another task or resolution, as unilm's fine-tuning loaders do.

One implementation for the converter (``--task``, ``--image-size``, ``--num-labels``), ``hf-beit train
--init-from`` and pre-training, on transformers' classic weight names:

* :func:`retarget_config` -- the config of the target model: a pre-training (shared relative table) checkpoint
  gets per-layer tables and no mask token, segmentation gets unilm's feature taps, labels and resolution change;
* :func:`retarget_state_dict` -- the weights for it: the shared table copied into every layer, position tables
  resized with unilm's geometric interpolation (absolute embeddings bicubically), a head that does not fit the new
  task or label set dropped (it is initialised afresh), everything else kept exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .configuration_beit import BeitConfig
from .modeling_beit import resize_absolute_position_embeddings
from .relative_position import resize_relative_position_table
from .tasks import get_task, task_of_config, task_of_state_dict

SHARED_TABLE_KEY = "beit.encoder.relative_position_bias.relative_position_bias_table"
LAYER_TABLE_KEY = "beit.encoder.layer.{}.attention.attention.relative_position_bias.relative_position_bias_table"
POSITION_KEY = "beit.embeddings.position_embeddings"
# Config keys that describe a checkpoint's task (labels, head, feature names) rather than its backbone.
_TASK_CONFIG_KEYS = (
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


class RetargetingError(ValueError):
    """A checkpoint cannot serve the requested task or configuration."""


def default_out_indices(depth: int) -> list[int]:
    """unilm's UPerNet taps, after 0-based blocks ``[L/3, L/2, 2L/3, L] - 1`` (base [3, 5, 7, 11], large [7, 11, 15,
    23]); the same rule for other depths, falling back to the last four blocks where it would repeat one."""
    if depth < 4:
        raise RetargetingError(f"Segmentation needs at least 4 transformer blocks to tap, the model has {depth}.")
    indices = [max(0, round(depth * fraction) - 1) for fraction in (1 / 3, 1 / 2, 2 / 3)] + [depth - 1]
    return indices if len(set(indices)) == 4 else list(range(depth - 4, depth))


def is_pretraining_config(config: BeitConfig) -> bool:
    """True for masked-image-modeling checkpoints (a shared relative table or the MIM architecture)."""
    task = task_of_config(config)
    return bool(config.use_shared_relative_position_bias) or (task is not None and task.name == "mim")


def retarget_config(
    source: BeitConfig,
    task: str,
    *,
    image_size: int | None = None,
    num_labels: int | None = None,
    id2label: dict[int, str] | None = None,
    **overrides,
) -> BeitConfig:
    """The config of a ``task`` model initialised from a checkpoint with config ``source``.

    Labels: ``id2label`` (or ``num_labels`` generic ones), else the source's when it serves the same task.
    ``overrides`` set any other field (e.g. ``drop_path_rate``).
    """
    target = get_task(task)
    source_task = task_of_config(source)
    if target.name == "mim" and not is_pretraining_config(source):
        raise RetargetingError("Only a masked-image-modeling checkpoint can serve masked image modeling.")
    values = source.to_dict()
    for key in _TASK_CONFIG_KEYS:
        values.pop(key, None)
    if target.name != "mim" and is_pretraining_config(source):
        values.update(use_mask_token=False, use_mean_pooling=True)
        if source.use_shared_relative_position_bias:  # unilm fine-tuning: one table per layer, from the shared one
            values.update(use_relative_position_bias=True, use_shared_relative_position_bias=False)
    if image_size is not None:
        patch = source.patch_size_2d
        if image_size < 1 or image_size % patch[0] or image_size % patch[1]:
            raise RetargetingError(
                f"An image size of {image_size} is not a whole number of {patch[0]}x{patch[1]} patches; pick a "
                f"multiple of the patch size (e.g. {max(1, round(image_size / patch[0])) * patch[0]})."
            )
        values["image_size"] = image_size
    values.update(overrides)
    if target.name == "segmentation":
        values["out_indices"] = segmentation_out_indices(values.get("out_indices"), values["num_hidden_layers"])
    if id2label is None and num_labels is None and source_task is not None and source_task.name == target.name:
        id2label = {int(k): v for k, v in source.id2label.items()}
    if id2label is not None:
        labels = {int(k): str(v) for k, v in id2label.items()}
        values.update(id2label=labels, label2id={v: k for k, v in labels.items()})
    elif num_labels is not None:
        values["num_labels"] = num_labels
    values["architectures"] = [target.architecture]
    return BeitConfig.from_dict(values)


def segmentation_out_indices(out_indices: list[int] | None, depth: int) -> list[int]:
    """``out_indices`` if they are 4 valid 0-based blocks of a ``depth``-block model, else
    :func:`default_out_indices`."""
    if out_indices is not None and len(out_indices) == 4 and all(0 <= index < depth for index in out_indices):
        return list(out_indices)
    return default_out_indices(depth)


@dataclass
class Retargeted:
    """Weights for the target model: ``new_keys`` start freshly initialised, ``dropped_keys`` had no place.

    ``notes`` say what was done; ``warnings`` what a user must notice (a trained head replaced for new labels).
    """

    state_dict: dict[str, torch.Tensor]
    new_keys: list[str] = field(default_factory=list)
    dropped_keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def retarget_state_dict(
    state_dict: dict[str, torch.Tensor], source: BeitConfig, target: BeitConfig
) -> Retargeted:
    """Fit a checkpoint's weights (classic names) to the model ``target`` describes (see the module docstring).

    Raises :class:`RetargetingError` when a backbone weight does not fit (another architecture).
    """
    target_task = _task_named_in(target)
    weights = {key: value for key, value in state_dict.items() if "relative_position_index" not in key}
    notes: list[str] = []
    if (
        SHARED_TABLE_KEY in weights
        and target.use_relative_position_bias
        and not target.use_shared_relative_position_bias
    ):
        shared = weights.pop(SHARED_TABLE_KEY)
        for layer in range(target.num_hidden_layers):
            weights[LAYER_TABLE_KEY.format(layer)] = shared.clone()
        notes.append("Copied the shared relative position bias into every layer (as unilm does for fine-tuning).")
    if source.window_size != target.window_size:
        weights = _resize_positions(weights, source.window_size, target.window_size)
        notes.append(
            f"Resized position parameters from a {_grid(source.window_size)} to a {_grid(target.window_size)} "
            "patch grid with unilm's geometric-progression bicubic interpolation (absolute embeddings: bicubic)."
        )
    expected = _expected_shapes(target, target_task)
    source_task = task_of_config(source) or task_of_state_dict(weights)
    task_changed = source_task.name != target_task.name
    labels_changed = not task_changed and _labels(source) != _labels(target)
    kept, dropped = {}, []
    for key, value in weights.items():
        is_head = key.startswith(target_task.head_prefixes)
        replaced = (task_changed and is_head) or (labels_changed and key.startswith(target_task.label_prefixes))
        if key not in expected or replaced:
            dropped.append(key)
        elif tuple(value.shape) != expected[key]:
            if not is_head:
                raise RetargetingError(
                    f"Checkpoint weight {key} has shape {tuple(value.shape)} but the {target_task.name} model needs "
                    f"{expected[key]}; the checkpoint has another architecture."
                )
            dropped.append(key)
        else:
            kept[key] = value
    new = sorted(set(expected) - set(kept))
    warnings = []
    if labels_changed:
        old, fresh = _labels(source), _labels(target)
        warnings.append(
            f"Replacing the {target_task.name} head: the checkpoint has {len(old)} labels ({_preview(old)}) but the "
            f"new model has {len(fresh)} ({_preview(fresh)}); the head is initialised afresh and trained from scratch."
        )
    if dropped:
        notes.append(f"Dropped {len(dropped)} checkpoint tensors the {target_task.name} model has no place for.")
    if (task_changed or labels_changed) and any(key.startswith(target_task.head_prefixes) for key in new):
        notes.append(f"The {target_task.description} head is new ({_label_summary(target, target_task)}).")
    return Retargeted(kept, new, dropped, notes, warnings)


def _task_named_in(config: BeitConfig):
    task = task_of_config(config)
    if task is None:
        raise RetargetingError("The target config names no hf_beit architecture (config.architectures).")
    return task


def _expected_shapes(config: BeitConfig, task) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = task.model_class(config)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def _resize_positions(weights: dict, src: tuple[int, int], dst: tuple[int, int]) -> dict:
    resized = dict(weights)
    with torch.no_grad():
        for key, value in weights.items():
            if key.endswith("relative_position_bias_table"):
                resized[key] = resize_relative_position_table(value.double(), src, dst).to(value.dtype)
            elif key == POSITION_KEY:
                resized[key] = resize_absolute_position_embeddings(value, src, dst).contiguous()
    return resized


def _labels(config: BeitConfig) -> dict[int, str]:
    return {int(k): str(v) for k, v in (config.id2label or {}).items()}


def _preview(labels: dict[int, str], count: int = 5) -> str:
    names = [labels[k] for k in sorted(labels)[:count]]
    return ", ".join(names) + (", ..." if len(labels) > count else "")


def _label_summary(config: BeitConfig, task) -> str:
    return f"{config.vocab_size} visual tokens" if task.name == "mim" else f"{config.num_labels} labels"


def _grid(window: tuple[int, int]) -> str:
    return f"{window[0]}x{window[1]}"
