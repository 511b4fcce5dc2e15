"""Infer a BEiT configuration from an original state dict (unilm names, optional mmseg prefixes)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch

from ..configuration_beit import BeitConfig
from ..retargeting import default_out_indices
from ..tasks import get_task
from .errors import ConversionError
from .key_mapping import strip_backbone_prefix

_SHARED_TABLE = "rel_pos_bias.relative_position_bias_table"
_LAYER_TABLE = "blocks.{}.attn.relative_position_bias_table"
NUM_EXTRA_TOKENS = 3


@dataclass(frozen=True)
class CheckpointFacts:
    """Architecture facts read from an original state dict."""

    task: str  # "mim", "classification", "segmentation" or "embeddings" (no head)
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
    for head in ("lm_head", "head"):  # a bias without its weight would otherwise read as "no head" and be dropped
        if f"{head}.weight" not in keys and f"{head}.bias" in keys:
            raise ConversionError(f"The checkpoint has '{head}.bias' but no '{head}.weight': its head is incomplete.")
    if "lm_head.weight" in keys:
        return "mim"
    if any(key.startswith(("decode_head.", "fpn1.")) for key in keys):
        return "segmentation"
    if "head.weight" in keys:
        return "classification"
    return "embeddings"


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


def build_config(facts: CheckpointFacts, **overrides):
    """The ``BeitConfig`` of the checkpoint as it is (its own task and head); ``overrides`` win.

    What the weights cannot tell must come from the caller: without a relative-position table the number of
    attention heads is unknown, and ``num_attention_heads`` (``--num-heads``, or the registry) is required. Use
    ``hf_beit.retargeting.retarget_config`` on the result to serve another task or resolution.
    """
    heads = overrides.pop("num_attention_heads", None)
    if facts.num_attention_heads is not None:
        if heads is not None and heads != facts.num_attention_heads:
            raise ConversionError(
                f"--num-heads {heads} contradicts the checkpoint's relative-position tables, which have "
                f"{facts.num_attention_heads} heads."
            )
        heads = facts.num_attention_heads
    if heads is None:
        raise ConversionError(
            "The checkpoint has no relative-position table, so its number of attention heads cannot be read from "
            f"the weights (hidden size {facts.hidden_size}); pass --num-heads (BEiT base: 12, large: 16) or "
            "--model-name of a registry entry."
        )
    if facts.hidden_size % heads:
        raise ConversionError(f"hidden size {facts.hidden_size} is not divisible by --num-heads {heads}.")
    values = {
        "hidden_size": facts.hidden_size,
        "num_hidden_layers": facts.num_hidden_layers,
        "num_attention_heads": heads,
        "intermediate_size": facts.intermediate_size,
        "patch_size": facts.patch_size,
        "num_channels": facts.num_channels,
        "image_size": facts.image_size or 224,  # only positionless checkpoints lack one, and they fit any size
        "layer_norm_eps": 1e-6,
        "use_absolute_position_embeddings": facts.use_absolute_position_embeddings,
        "use_relative_position_bias": facts.use_relative_position_bias,
        "use_shared_relative_position_bias": facts.use_shared_relative_position_bias,
        "layer_scale_init_value": 0.1 if facts.use_layer_scale else 0.0,
        "use_mask_token": facts.use_mask_token,
        "use_mean_pooling": facts.use_mean_pooling,
        "architectures": [get_task(facts.task).architecture],
    }
    if facts.vocab_size:
        values["vocab_size"] = facts.vocab_size
    if facts.num_labels:
        values["num_labels"] = facts.num_labels
    if facts.task == "segmentation":
        values["out_indices"] = default_out_indices(facts.num_hidden_layers)
        values["use_auxiliary_head"] = facts.auxiliary_num_convs > 0
        if facts.auxiliary_channels:
            values["auxiliary_channels"] = facts.auxiliary_channels
            values["auxiliary_num_convs"] = facts.auxiliary_num_convs
    values.update({key: value for key, value in overrides.items() if value is not None})
    return BeitConfig(**values)


def describe(facts: CheckpointFacts) -> str:
    """One line per inferred fact, for logs."""
    return "\n".join(f"  {name}: {value}" for name, value in asdict(facts).items())
