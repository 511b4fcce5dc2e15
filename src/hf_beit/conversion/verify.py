"""Checks run on a converted repo before it is moved into place."""

from __future__ import annotations

from pathlib import Path

import torch

from ..tasks import get_task
from .errors import ConversionError


def load_converted(folder: str | Path, task: str, new_keys: list[str] = ()):
    """Load ``folder`` with hf_beit and fail on unexpected, mismatched or missing weights.

    Missing weights are accepted only if listed in ``new_keys`` (a head created for a new task).
    Returns ``(model, missing_keys)``.
    """
    model, info = get_task(task).model_class.from_pretrained(str(folder), output_loading_info=True)
    unexpected = list(info.get("unexpected_keys", []))
    mismatched = [str(item) for item in info.get("mismatched_keys", [])]
    missing = list(info.get("missing_keys", []))
    surprising = sorted(set(missing) - set(new_keys))
    if unexpected or mismatched or surprising:
        raise ConversionError(
            "The converted repo does not load cleanly: "
            f"missing={surprising[:8]}, unexpected={unexpected[:8]}, mismatched={mismatched[:8]}."
        )
    return model.eval(), missing


def _timm_model(config, qkv_bias: bool):
    from timm.models.beit import Beit

    return Beit(
        img_size=config.image_size,
        patch_size=config.patch_size,
        in_chans=config.num_channels,
        num_classes=config.num_labels,
        global_pool="avg" if config.use_mean_pooling else "token",
        embed_dim=config.hidden_size,
        depth=config.num_hidden_layers,
        num_heads=config.num_attention_heads,
        mlp_ratio=config.intermediate_size / config.hidden_size,
        qkv_bias=qkv_bias,
        init_values=config.layer_scale_init_value or None,
        use_abs_pos_emb=config.use_absolute_position_embeddings,
        use_rel_pos_bias=config.use_relative_position_bias,
        use_shared_rel_pos_bias=config.use_shared_relative_position_bias,
    ).eval()


def compare_with_timm(original_state_dict: dict[str, torch.Tensor], model, *, batch_size: int = 2, seed: int = 0):
    """Max |logit difference| between ``model`` and timm's ``Beit`` loading the original (unilm-named) weights.

    Returns ``None`` when timm is not installed.
    """
    try:
        from timm.models.beit import checkpoint_filter_fn
    except ImportError:
        return None
    config = model.config
    reference = _timm_model(config, qkv_bias="blocks.0.attn.q_bias" in original_state_dict)
    reference.load_state_dict(checkpoint_filter_fn(dict(original_state_dict), reference), strict=True)
    generator = torch.Generator().manual_seed(seed)
    pixel_values = torch.randn(
        batch_size, config.num_channels, config.image_size, config.image_size, generator=generator
    )
    with torch.no_grad():
        expected = reference(pixel_values)
        actual = model(pixel_values=pixel_values).logits
    return (expected - actual).abs().max().item()
