"""The same random BEiT-base weights in hf_beit, stock transformers and timm (for side-by-side benchmarks)."""

from __future__ import annotations

import tempfile

import timm
import torch
import transformers
from torch import nn

import hf_beit

# The BEiT-base/16 224 classification geometry of the released ImageNet models (unilm; LayerNorm eps 1e-6).
BASE_OVERRIDES = {"num_labels": 1000, "use_mean_pooling": True, "use_relative_position_bias": True}


@torch.no_grad()
def build_hf_beit(seed: int = 0, **overrides) -> hf_beit.BeitForImageClassification:
    """BEiT-base 224 with random weights; relative-position tables are non-zero so the bias does real work."""
    config = hf_beit.BeitConfig.from_preset("beit-base-patch16-224", **{**BASE_OVERRIDES, **overrides})
    torch.manual_seed(seed)
    model = hf_beit.BeitForImageClassification(config)
    for name, parameter in model.named_parameters():
        if name.endswith("relative_position_bias_table"):
            parameter.normal_(0.0, 0.02)
    return _prime_index_cache(model.eval())


def share_weights(source: nn.Module, target: nn.Module) -> nn.Module:
    """Make ``target`` (same architecture) use ``source``'s parameter tensors: no extra memory per variant."""
    target.load_state_dict(source.state_dict(), assign=True)
    return target.eval()


def hf_beit_variant(source: hf_beit.BeitForImageClassification) -> hf_beit.BeitForImageClassification:
    """A second hf_beit model object on the same weights (each object keeps its own packed-weight caches)."""
    with torch.device("meta"):
        shell = hf_beit.BeitForImageClassification(source.config)
    return share_weights(source, shell)


def to_transformers(source: hf_beit.BeitForImageClassification, attn_implementation: str) -> nn.Module:
    """Stock ``transformers.BeitForImageClassification`` loaded from ``source`` written with ``save_pretrained``."""
    with tempfile.TemporaryDirectory() as directory:
        source.save_pretrained(directory)
        model = transformers.BeitForImageClassification.from_pretrained(
            directory, attn_implementation=attn_implementation
        )
    return _prime_index_cache(model.eval())


def _prime_index_cache(model: nn.Module) -> nn.Module:
    """Run one image under no_grad so that process-wide caches are built outside inference_mode.

    Both transformers and hf_beit cache the relative-position index per window size on first use; if that first use
    is under ``torch.inference_mode`` every later training step fails ("Inference tensors cannot be saved for
    backward"), which would break the training comparison that follows the inference timings.
    """
    config = model.config
    with torch.no_grad():
        model(pixel_values=torch.zeros(1, config.num_channels, config.image_size, config.image_size))
    return model


def hf_to_timm_state_dict(state: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """Map hf_beit / transformers classic BEiT classification names to timm's ``beit_*`` names.

    timm fuses q/k/v into one ``qkv`` weight with separate ``q_bias``/``v_bias``, calls layer scale ``gamma_1/2``
    and keeps a per-block relative-position table with the same row order (offsets, then the three CLS rows).
    """
    out = {
        "cls_token": state["beit.embeddings.cls_token"],
        "patch_embed.proj.weight": state["beit.embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": state["beit.embeddings.patch_embeddings.projection.bias"],
        "fc_norm.weight": state["beit.pooler.layernorm.weight"],
        "fc_norm.bias": state["beit.pooler.layernorm.bias"],
        "head.weight": state["classifier.weight"],
        "head.bias": state["classifier.bias"],
    }
    renames = {
        "lambda_1": "gamma_1",
        "lambda_2": "gamma_2",
        "layernorm_before.weight": "norm1.weight",
        "layernorm_before.bias": "norm1.bias",
        "layernorm_after.weight": "norm2.weight",
        "layernorm_after.bias": "norm2.bias",
        "attention.attention.query.bias": "attn.q_bias",
        "attention.attention.value.bias": "attn.v_bias",
        "attention.attention.relative_position_bias.relative_position_bias_table": "attn.relative_position_bias_table",
        "attention.output.dense.weight": "attn.proj.weight",
        "attention.output.dense.bias": "attn.proj.bias",
        "intermediate.dense.weight": "mlp.fc1.weight",
        "intermediate.dense.bias": "mlp.fc1.bias",
        "output.dense.weight": "mlp.fc2.weight",
        "output.dense.bias": "mlp.fc2.bias",
    }
    for index in range(num_layers):
        ours, theirs = f"beit.encoder.layer.{index}.", f"blocks.{index}."
        for name, timm_name in renames.items():
            out[theirs + timm_name] = state[ours + name]
        attention = ours + "attention.attention."
        out[theirs + "attn.qkv.weight"] = torch.cat(
            [state[attention + part + ".weight"] for part in ("query", "key", "value")]
        )
    return out


def to_timm(source: hf_beit.BeitForImageClassification) -> nn.Module:
    """timm's BEiT (per-layer relative bias, layer scale, mean pooling) with ``source``'s weights and geometry."""
    config = source.config
    if config.use_absolute_position_embeddings or config.use_shared_relative_position_bias:
        raise ValueError("to_timm maps the per-layer relative-bias classification layout only.")
    model = timm.create_model(
        "beit_base_patch16_224",
        pretrained=False,
        num_classes=config.num_labels,
        drop_path_rate=config.drop_path_rate,
        img_size=config.image_size,
        patch_size=config.patch_size,
        embed_dim=config.hidden_size,
        depth=config.num_hidden_layers,
        num_heads=config.num_attention_heads,
        mlp_ratio=config.intermediate_size / config.hidden_size,
        init_values=config.layer_scale_init_value,
    )
    state = hf_to_timm_state_dict(source.state_dict(), config.num_hidden_layers)
    model.load_state_dict(state, strict=True)
    return model.eval()
