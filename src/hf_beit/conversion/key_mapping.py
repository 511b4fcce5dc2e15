"""Pure mapping of original (unilm / mmseg) BEiT weight names to transformers' classic on-disk layout.

Transforms: ``attn.qkv.weight`` is split into query/key/value; ``q_bias``/``v_bias`` become the query/value biases
(the key has no bias); ``gamma_1/2`` -> ``lambda_1/2``; ``fc_norm`` -> ``beit.pooler.layernorm``; ``head`` ->
``classifier``; ``norm`` -> ``layernorm`` (MIM) or ``beit.layernorm`` (CLS-token pooling); mmseg's ``backbone.``
prefix is stripped and ``conv_seg`` -> ``classifier``; every ``relative_position_index`` buffer is dropped.
Nothing else is reshaped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from .errors import ConversionError

_LAYER = "beit.encoder.layer.{}."
_BN = r"(?:conv\.weight|bn\.(?:weight|bias|running_mean|running_var|num_batches_tracked))"

# (pattern on the backbone-relative unilm key, replacement template using the match groups)
_BLOCK_RULES: tuple[tuple[str, str], ...] = (
    (r"norm1\.(weight|bias)", "layernorm_before.{0}"),
    (r"norm2\.(weight|bias)", "layernorm_after.{0}"),
    (r"gamma_1", "lambda_1"),
    (r"gamma_2", "lambda_2"),
    (r"attn\.q_bias", "attention.attention.query.bias"),
    (r"attn\.v_bias", "attention.attention.value.bias"),
    (r"attn\.proj\.(weight|bias)", "attention.output.dense.{0}"),
    (r"attn\.relative_position_bias_table", "attention.attention.relative_position_bias.relative_position_bias_table"),
    (r"mlp\.fc1\.(weight|bias)", "intermediate.dense.{0}"),
    (r"mlp\.fc2\.(weight|bias)", "output.dense.{0}"),
)
_TOP_RULES: tuple[tuple[str, str], ...] = (
    (r"cls_token", "beit.embeddings.cls_token"),
    (r"mask_token", "beit.embeddings.mask_token"),
    (r"pos_embed", "beit.embeddings.position_embeddings"),
    (r"patch_embed\.proj\.(weight|bias)", "beit.embeddings.patch_embeddings.projection.{0}"),
    (r"rel_pos_bias\.relative_position_bias_table", "beit.encoder.relative_position_bias.relative_position_bias_table"),
    (r"fc_norm\.(weight|bias)", "beit.pooler.layernorm.{0}"),
    (r"head\.(weight|bias)", "classifier.{0}"),
    (r"lm_head\.(weight|bias)", "lm_head.{0}"),
    (r"(fpn1\.[013]\.\w+|fpn2\.0\.\w+)", "{0}"),
    (
        rf"(decode_head\.(?:psp_modules\.\d+\.1|bottleneck|lateral_convs\.\d+|fpn_convs\.\d+|fpn_bottleneck)\.{_BN})",
        "{0}",
    ),
    (r"decode_head\.conv_seg\.(weight|bias)", "decode_head.classifier.{0}"),
    (rf"(auxiliary_head\.convs\.\d+\.{_BN})", "{0}"),
    (r"auxiliary_head\.conv_seg\.(weight|bias)", "auxiliary_head.classifier.{0}"),
)
_BLOCK = re.compile(r"blocks\.(\d+)\.(.+)")


def strip_backbone_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """mmseg names (``backbone.blocks.0...``) -> backbone-relative names (``blocks.0...``); heads are untouched."""
    return {key.removeprefix("backbone."): value for key, value in state_dict.items()}


def _split_qkv(prefix: str, suffix: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    if tensor.shape[0] % 3:
        raise ConversionError(f"attn.qkv.{suffix} has {tensor.shape[0]} rows, which is not divisible by 3.")
    query, key, value = tensor.chunk(3, dim=0)
    names = ("query", "key", "value")
    if suffix == "bias":  # unilm stores q_bias/v_bias; a fused bias must have a zero key part (HF key has no bias)
        if key.abs().max() > 0:
            raise ConversionError(f"{prefix}: fused qkv bias has a non-zero key bias, which BEiT cannot represent.")
        return {f"{prefix}attention.attention.{n}.bias": t for n, t in zip(names, (query, key, value)) if n != "key"}
    return {f"{prefix}attention.attention.{n}.weight": t for n, t in zip(names, (query, key, value))}


def _map_one(key: str, tensor: torch.Tensor, task: str) -> dict[str, torch.Tensor] | None:
    block = _BLOCK.fullmatch(key)
    if block:
        prefix, rest = _LAYER.format(block.group(1)), block.group(2)
        qkv = re.fullmatch(r"attn\.qkv\.(weight|bias)", rest)
        if qkv:
            return _split_qkv(prefix, qkv.group(1), tensor)
        return _apply_rules(_BLOCK_RULES, rest, tensor, prefix)
    norm = re.fullmatch(r"norm\.(weight|bias)", key)
    if norm:
        target = "layernorm" if task == "mim" else "beit.layernorm"
        return {f"{target}.{norm.group(1)}": tensor}
    return _apply_rules(_TOP_RULES, key, tensor, "")


def _apply_rules(rules, key: str, tensor: torch.Tensor, prefix: str) -> dict[str, torch.Tensor] | None:
    for pattern, template in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return {prefix + template.format(*match.groups()): tensor}
    return None


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], task: str) -> dict[str, torch.Tensor]:
    """Map an original BEiT state dict (unilm/timm names, optional mmseg prefixes) to transformers' classic names.

    ``task`` (the checkpoint's own: ``mim``, ``classification``, ``segmentation`` or ``embeddings``) decides where
    a final ``norm`` goes. The input is not
    modified; tensors are not copied. Raises ``ConversionError`` listing every key it does not recognise.
    """
    if task not in ("mim", "classification", "segmentation", "embeddings"):
        raise ConversionError(f"Unknown task {task!r}; expected mim, classification, segmentation or embeddings.")
    converted: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in strip_backbone_prefix(state_dict).items():
        if key.endswith("relative_position_index"):
            continue
        mapped = _map_one(key, tensor, task)
        if mapped is None:
            unknown.append(key)
        else:
            converted.update(mapped)
    if unknown:
        raise ConversionError(
            f"{len(unknown)} weight(s) are not part of a BEiT v1 checkpoint: {', '.join(unknown[:10])}"
            + (" ..." if len(unknown) > 10 else "")
        )
    return converted
