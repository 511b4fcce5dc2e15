"""The pure key mapping and the config inference, checked against the names stock transformers saves."""

from __future__ import annotations

import pytest
import torch
import transformers
from safetensors import safe_open
from test_conversion_reference import make_backbone, make_mim_checkpoint, make_upernet_checkpoint

from hf_beit.conversion import ConversionError, build_config, convert_state_dict, inspect_state_dict
from hf_beit.retargeting import RetargetingError, default_out_indices, retarget_config

LAYER0 = "beit.encoder.layer.0."


def _saved_names(tmp_path, cls, config) -> set[str]:
    """Names transformers' save_pretrained writes (its classic on-disk layout) for a model of ``config``."""
    values = {k: v for k, v in config.to_dict().items() if k != "out_features"}  # names do not depend on the taps
    cls(transformers.BeitConfig(**values)).save_pretrained(tmp_path / cls.__name__)
    with safe_open(tmp_path / cls.__name__ / "model.safetensors", "pt") as handle:
        return set(handle.keys())


def _classification_checkpoint():
    sd = make_backbone(depth=2)
    return sd | {
        "fc_norm.weight": torch.ones(32),
        "fc_norm.bias": torch.zeros(32),
        "head.weight": torch.zeros(3, 32),
        "head.bias": torch.zeros(3),
    }


@pytest.mark.parametrize(
    ("task", "make", "cls"),
    [
        ("mim", lambda: make_mim_checkpoint(depth=2), transformers.BeitForMaskedImageModeling),
        ("classification", _classification_checkpoint, transformers.BeitForImageClassification),
        ("segmentation", lambda: make_upernet_checkpoint(depth=4), transformers.BeitForSemanticSegmentation),
    ],
)
def test_names_match_transformers_on_disk_layout(tmp_path, task, make, cls):
    torch.manual_seed(0)
    sd = make()
    converted = convert_state_dict(sd, task)
    config = build_config(inspect_state_dict(sd))
    assert set(converted) == _saved_names(tmp_path, cls, config)


def test_tensor_transforms():
    torch.manual_seed(0)
    sd = _classification_checkpoint()
    before = dict(sd)
    out = convert_state_dict(sd, "classification")
    assert sd.keys() == before.keys()  # input untouched
    qkv = sd["blocks.0.attn.qkv.weight"]
    assert torch.equal(out[LAYER0 + "attention.attention.query.weight"], qkv[:32])
    assert torch.equal(out[LAYER0 + "attention.attention.key.weight"], qkv[32:64])
    assert torch.equal(out[LAYER0 + "attention.attention.value.weight"], qkv[64:])
    assert out[LAYER0 + "attention.attention.query.bias"] is sd["blocks.0.attn.q_bias"]
    assert out[LAYER0 + "attention.attention.value.bias"] is sd["blocks.0.attn.v_bias"]
    assert LAYER0 + "attention.attention.key.bias" not in out
    assert out[LAYER0 + "lambda_1"] is sd["blocks.0.gamma_1"] and out[LAYER0 + "lambda_2"] is sd["blocks.0.gamma_2"]
    assert out["beit.pooler.layernorm.weight"] is sd["fc_norm.weight"] and out["classifier.bias"] is sd["head.bias"]
    assert not [key for key in out if "relative_position_index" in key]


def test_final_norm_depends_on_task():
    sd = {"norm.weight": torch.ones(2), "norm.bias": torch.zeros(2)}
    assert set(convert_state_dict(sd, "mim")) == {"layernorm.weight", "layernorm.bias"}
    assert set(convert_state_dict(sd, "classification")) == {"beit.layernorm.weight", "beit.layernorm.bias"}


def test_mmseg_names():
    torch.manual_seed(0)
    sd = make_upernet_checkpoint(depth=4)
    out = convert_state_dict(sd, "segmentation")
    assert out["fpn1.1.num_batches_tracked"] is sd["backbone.fpn1.1.num_batches_tracked"]
    assert out["decode_head.classifier.weight"] is sd["decode_head.conv_seg.weight"]
    assert out["auxiliary_head.classifier.bias"] is sd["auxiliary_head.conv_seg.bias"]
    assert out["decode_head.psp_modules.3.1.bn.running_var"] is sd["decode_head.psp_modules.3.1.bn.running_var"]
    assert not [key for key in out if key.startswith("backbone.")]


def test_fused_qkv_bias():
    bias = torch.cat([torch.ones(4), torch.zeros(4), 2 * torch.ones(4)])
    out = convert_state_dict({"blocks.0.attn.qkv.bias": bias}, "classification")
    assert sorted(out) == [LAYER0 + "attention.attention.query.bias", LAYER0 + "attention.attention.value.bias"]
    with pytest.raises(ConversionError, match="non-zero key bias"):
        convert_state_dict({"blocks.0.attn.qkv.bias": torch.ones(12)}, "classification")


def test_unknown_keys_and_task():
    with pytest.raises(ConversionError, match=r"2 weight.*foo.*blocks\.0\.bar"):
        convert_state_dict({"foo": torch.zeros(1), "blocks.0.bar": torch.zeros(1), "cls_token": torch.zeros(1)}, "mim")
    with pytest.raises(ConversionError, match="Unknown task"):
        convert_state_dict({}, "detection")


def test_inferred_facts():
    torch.manual_seed(0)
    mim = inspect_state_dict(make_mim_checkpoint(depth=3, heads=2, window=6))
    assert (mim.task, mim.num_hidden_layers, mim.num_attention_heads, mim.image_size, mim.patch_size) == (
        "mim",
        3,
        2,
        48,
        8,
    )
    assert mim.use_shared_relative_position_bias and not mim.use_relative_position_bias and mim.vocab_size == 24
    absolute = inspect_state_dict(make_backbone(per_layer=False, abs_pos=True, layer_scale=False, window=5))
    assert absolute.task == "embeddings" and absolute.image_size == 40 and absolute.num_attention_heads is None
    assert absolute.use_absolute_position_embeddings and not absolute.use_layer_scale
    seg = inspect_state_dict(make_upernet_checkpoint(depth=4, num_classes=9, aux_channels=8))
    assert (seg.task, seg.num_labels, seg.auxiliary_channels, seg.auxiliary_num_convs, seg.num_pool_scales) == (
        "segmentation",
        9,
        8,
        1,
        4,
    )


def test_config_for_new_task():
    torch.manual_seed(0)
    facts = inspect_state_dict(make_mim_checkpoint(depth=12))
    config = retarget_config(build_config(facts), "segmentation", num_labels=150)
    assert config.use_relative_position_bias and not config.use_shared_relative_position_bias
    assert list(config.out_indices) == [3, 5, 7, 11] and config.num_labels == 150 and not config.use_mask_token
    assert config.architectures == ["BeitForSemanticSegmentation"] and config.layer_norm_eps == 1e-6


def test_default_out_indices():
    assert default_out_indices(12) == [3, 5, 7, 11] and default_out_indices(24) == [7, 11, 15, 23]
    assert default_out_indices(4) == [0, 1, 2, 3]
    with pytest.raises(RetargetingError, match="at least 4"):
        default_out_indices(3)


def test_bad_table_size():
    sd = make_backbone(depth=1) | {"blocks.0.attn.relative_position_bias_table": torch.zeros(50, 4)}
    with pytest.raises(ConversionError, match="50 rows"):
        inspect_state_dict(sd)
