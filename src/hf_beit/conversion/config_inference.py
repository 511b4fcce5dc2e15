"""Infer a BEiT configuration from an original state dict (unilm names, optional mmseg prefixes)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch

from ._models import TASK_ARCHITECTURES, config_class
from .errors import ConversionError
from .key_mapping import strip_backbone_prefix

_SHARED_TABLE = "rel_pos_bias.relative_position_bias_table"
_LAYER_TABLE = "blocks.{}.attn.relative_position_bias_table"
NUM_EXTRA_TOKENS = 3


@dataclass(frozen=True)
class CheckpointFacts:
    """Architecture facts read from an original state dict."""

    task: str  # "mim", "classification", "segmentation" or "backbone" (no head)
    hidden_size: int
    num_hidden_layers: int
    intermediate_size: int
    num_attention_heads: int | None  # None when there is no relative table to read it from
    patch_size: int
    num_channels: int
    image_size: int | None  # None when no table or position embedding fixes it
    use_absolute_position_embeddings: bool
    use_shared_relative_position_bias: bool
    use_relative_position_bias: bool
    use_layer_scale: bool
    use_mask_token: bool
    use_mean_pooling: bool
    num_labels: int | None
    vocab_size: int | None
    auxiliary_channels: int | None
    auxiliary_num_convs: int
    num_pool_scales: int


def _require(state_dict: Mapping, key: str) -> torch.Tensor:
    if key not in state_dict:
        raise ConversionError(f"The checkpoint has no '{key}'; it does not look like a complete BEiT model.")
    return state_dict[key]


def _window_from_table(rows: int) -> int:
    side = math.isqrt(rows - NUM_EXTRA_TOKENS)
    if side * side != rows - NUM_EXTRA_TOKENS or side % 2 == 0:
        raise ConversionError(f"A relative-position table with {rows} rows does not belong to a square patch grid.")
    return (side + 1) // 2


def _window_from_pos_embed(length: int) -> int:
    side = math.isqrt(length - 1)
    if side * side != length - 1:
        raise ConversionError(f"Absolute position embeddings of length {length} do not form a square patch grid.")
    return side


def _detect_task(keys: set[str]) -> str:
    if "lm_head.weight" in keys:
        return "mim"
    if any(key.startswith(("decode_head.", "fpn1.")) for key in keys):
        return "segmentation"
    if "head.weight" in keys:
        return "classification"
    return "backbone"


def _count(keys: set[str], pattern: str) -> int:
    found = {int(m.group(1)) for key in keys if (m := re.match(pattern, key))}
    return max(found) + 1 if found else 0


def inspect_state_dict(state_dict: Mapping[str, torch.Tensor]) -> CheckpointFacts:
    """Read task, sizes, position-encoding type, layer scale, pooling and head sizes from an original state dict."""
    sd = strip_backbone_prefix(state_dict)
    keys = set(sd)
    patch = _require(sd, "patch_embed.proj.weight")
    if patch.ndim != 4 or patch.shape[-1] != patch.shape[-2]:
        raise ConversionError(f"patch_embed.proj.weight has shape {tuple(patch.shape)}; expected square patches.")
    depth = _count(keys, r"blocks\.(\d+)\.")
    if depth == 0:
        raise ConversionError("The checkpoint has no transformer blocks ('blocks.N.*').")
    table = sd.get(_SHARED_TABLE, sd.get(_LAYER_TABLE.format(0)))
    window = None
    if table is not None:
        window = _window_from_table(table.shape[0])
    elif "pos_embed" in sd:
        window = _window_from_pos_embed(sd["pos_embed"].shape[1])
    task = _detect_task(keys)
    head = {"classification": "head.weight", "segmentation": "decode_head.conv_seg.weight"}.get(task)
    fc1 = _require(sd, "blocks.0.mlp.fc1.weight")
    return CheckpointFacts(
        task=task,
        hidden_size=patch.shape[0],
        num_hidden_layers=depth,
        intermediate_size=fc1.shape[0],
        num_attention_heads=None if table is None else table.shape[1],
        patch_size=patch.shape[-1],
        num_channels=patch.shape[1],
        image_size=None if window is None else window * patch.shape[-1],
        use_absolute_position_embeddings="pos_embed" in keys,
        use_shared_relative_position_bias=_SHARED_TABLE in keys,
        use_relative_position_bias=_LAYER_TABLE.format(0) in keys,
        use_layer_scale="blocks.0.gamma_1" in keys,
        use_mask_token="mask_token" in keys,
        use_mean_pooling="fc_norm.weight" in keys or "norm.weight" not in keys or task == "mim",
        num_labels=sd[head].shape[0] if head in keys else None,
        vocab_size=sd["lm_head.weight"].shape[0] if "lm_head.weight" in keys else None,
        auxiliary_channels=sd["auxiliary_head.conv_seg.weight"].shape[1]
        if "auxiliary_head.conv_seg.weight" in keys
        else None,
        auxiliary_num_convs=_count(keys, r"auxiliary_head\.convs\.(\d+)\."),
        num_pool_scales=_count(keys, r"decode_head\.psp_modules\.(\d+)\."),
    )


def default_out_indices(num_layers: int) -> list[int]:
    """unilm's UPerNet taps: after 0-based blocks [L/3-1, L/2-1, 2L/3-1, L-1] (base [3,5,7,11], large [7,11,15,23])."""
    if num_layers < 4:
        raise ConversionError(f"Segmentation needs at least 4 blocks to tap, the model has {num_layers}.")
    indices = [max(0, round(num_layers * f) - 1) for f in (1 / 3, 1 / 2, 2 / 3)] + [num_layers - 1]
    return sorted(set(indices)) if len(set(indices)) == 4 else list(range(num_layers - 4, num_layers))


def build_config(facts: CheckpointFacts, task: str, **overrides):
    """A ``BeitConfig`` for ``task`` from checkpoint facts; ``overrides`` (e.g. image_size, num_labels) win.

    ``task`` may differ from ``facts.task`` when a checkpoint initialises another task (MIM -> classification,
    classification -> segmentation); the per-layer relative bias is then used and the new head sized by
    ``num_labels``.
    """
    heads = facts.num_attention_heads or max(1, facts.hidden_size // 64)
    per_layer = facts.use_relative_position_bias or (task != "mim" and facts.use_shared_relative_position_bias)
    values = {
        "hidden_size": facts.hidden_size,
        "num_hidden_layers": facts.num_hidden_layers,
        "num_attention_heads": heads,
        "intermediate_size": facts.intermediate_size,
        "patch_size": facts.patch_size,
        "num_channels": facts.num_channels,
        "image_size": facts.image_size or 224,
        "layer_norm_eps": 1e-6,
        "use_absolute_position_embeddings": facts.use_absolute_position_embeddings,
        "use_relative_position_bias": per_layer,
        "use_shared_relative_position_bias": task == "mim" and facts.use_shared_relative_position_bias,
        "layer_scale_init_value": 0.1 if facts.use_layer_scale else 0.0,
        "use_mask_token": task == "mim",
        "use_mean_pooling": facts.use_mean_pooling or task != "classification",
        "architectures": [TASK_ARCHITECTURES[task]],
    }
    if facts.vocab_size:
        values["vocab_size"] = facts.vocab_size
    if task != "mim" and facts.num_labels and facts.task == task:
        values["num_labels"] = facts.num_labels
    if task == "segmentation":
        values["out_indices"] = default_out_indices(facts.num_hidden_layers)
        values["use_auxiliary_head"] = facts.auxiliary_num_convs > 0 or facts.task != "segmentation"
        if facts.auxiliary_channels:
            values["auxiliary_channels"] = facts.auxiliary_channels
            values["auxiliary_num_convs"] = facts.auxiliary_num_convs
    values.update({key: value for key, value in overrides.items() if value is not None})
    if values["hidden_size"] % values["num_attention_heads"]:
        raise ConversionError(f"hidden size {values['hidden_size']} is not divisible by {heads} attention heads.")
    return config_class()(**values)


def describe(facts: CheckpointFacts) -> str:
    """One line per inferred fact, for logs."""
    return "\n".join(f"  {name}: {value}" for name, value in asdict(facts).items())
