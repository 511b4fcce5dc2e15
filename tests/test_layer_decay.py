"""Layer-wise lr decay groups against unilm's rule, derived independently from unilm parameter names."""

from __future__ import annotations

import re

import pytest
import torch
import transformers

import hf_beit
from hf_beit.training.layer_decay import (
    create_layer_decay_optimizer,
    get_layer_id,
    layer_decay_optimizer_cls_and_kwargs,
    layer_decay_parameter_groups,
)

# hf_beit (classic HF) name prefix -> unilm name prefix (beit/modeling_finetune.py, modeling_pretrain.py, mmseg).
_TO_UNILM = [
    (r"^beit\.embeddings\.cls_token$", "cls_token"),
    (r"^beit\.embeddings\.mask_token$", "mask_token"),
    (r"^beit\.embeddings\.position_embeddings$", "pos_embed"),
    (r"^beit\.embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (r"^beit\.encoder\.relative_position_bias\.", "rel_pos_bias."),
    (r"^beit\.encoder\.layer\.(\d+)\.", r"blocks.\1."),
    (r"^beit\.pooler\.layernorm\.", "fc_norm."),
    (r"^beit\.layernorm\.", "norm."),
    (r"^layernorm\.", "norm."),
    (r"^classifier\.", "head."),
]


def unilm_name(name: str) -> str:
    for pattern, replacement in _TO_UNILM:
        converted, count = re.subn(pattern, replacement, name)
        if count:
            return converted
    return name  # heads keep their names (lm_head, decode_head, auxiliary_head, fpn*)


def unilm_layer_id(var_name: str, num_max_layer: int) -> int:
    """unilm optim_factory.get_num_layer_for_vit, restated: num_max_layer = L + 2."""
    if var_name in ("cls_token", "mask_token", "pos_embed") or var_name.startswith("patch_embed"):
        return 0
    if var_name.startswith("blocks"):
        return int(var_name.split(".")[1]) + 1
    return num_max_layer - 1  # rel_pos_bias, norms, heads


def unilm_no_decay(var_name: str, param: torch.Tensor) -> bool:
    """unilm get_parameter_groups: 1-D, '.bias' or in model.no_weight_decay() = {pos_embed, cls_token}."""
    return param.ndim == 1 or var_name.endswith(".bias") or var_name in ("pos_embed", "cls_token")


def _meta_model(model_class, preset: str, **overrides):
    with torch.device("meta"):
        return model_class(hf_beit.BeitConfig.from_preset(preset, **overrides))


def _check_against_unilm(model: torch.nn.Module, decay: float, num_layers: int) -> list[dict]:
    groups = layer_decay_parameter_groups(model, num_layers=num_layers, weight_decay=0.05, layer_decay=decay)
    params = dict(model.named_parameters())
    seen = []
    for group in groups:
        for name, param in zip(group["param_names"], group["params"], strict=True):
            assert params[name] is param
            expected_id = unilm_layer_id(unilm_name(name), num_layers + 2)
            no_decay = unilm_no_decay(unilm_name(name), param)
            assert group["group_name"] == f"layer_{expected_id}_{'no_decay' if no_decay else 'decay'}", name
            assert group["weight_decay"] == (0.0 if no_decay else 0.05), name
            assert group["lr_scale"] == pytest.approx(decay ** (num_layers + 1 - expected_id)), name
            seen.append(name)
    assert sorted(seen) == sorted(params), "every parameter must be in exactly one group"
    return groups


def test_base_classification_groups_match_unilm_rule():
    model = _meta_model(hf_beit.BeitForImageClassification, "beit-base-patch16-224", num_labels=1000)
    groups = _check_against_unilm(model, decay=0.65, num_layers=12)
    by_name = {g["group_name"]: g for g in groups}
    expected_names = {f"layer_{i}_{kind}" for i in range(14) for kind in ("decay", "no_decay")}
    assert set(by_name) == expected_names
    # numbers from the unilm recipe write-up: embeddings 0.65**13 = 3.7e-3, last block 0.65, head 1.0
    assert by_name["layer_0_decay"]["lr_scale"] == pytest.approx(3.6972e-3, rel=1e-4)
    assert by_name["layer_12_decay"]["lr_scale"] == pytest.approx(0.65)
    assert by_name["layer_13_decay"]["lr_scale"] == 1.0
    assert set(by_name["layer_0_no_decay"]["param_names"]) == {
        "beit.embeddings.cls_token",
        "beit.embeddings.patch_embeddings.projection.bias",
    }
    assert by_name["layer_0_decay"]["param_names"] == ["beit.embeddings.patch_embeddings.projection.weight"]
    assert set(by_name["layer_13_decay"]["param_names"]) == {"classifier.weight"}
    assert set(by_name["layer_13_no_decay"]["param_names"]) == {
        "beit.pooler.layernorm.weight",
        "beit.pooler.layernorm.bias",
        "classifier.bias",
    }
    # per-layer relative tables are 2-D and decayed, with their block's lr
    table = "beit.encoder.layer.4.attention.attention.relative_position_bias.relative_position_bias_table"
    assert table in by_name["layer_5_decay"]["param_names"]
    # a block: 11 without decay (2 lambdas, 2 LayerNorms x2, q/v/attn-out/fc1/fc2 biases), 6 matrices + table with
    assert len(by_name["layer_5_no_decay"]["params"]) == 11
    assert len(by_name["layer_5_decay"]["params"]) == 7


def test_base_pretraining_and_position_embeddings():
    model = _meta_model(
        hf_beit.BeitForMaskedImageModeling, "beit-base-patch16-224-pt22k", use_absolute_position_embeddings=True
    )
    groups = {g["group_name"]: g for g in _check_against_unilm(model, decay=0.75, num_layers=12)}
    assert "beit.embeddings.position_embeddings" in groups["layer_0_no_decay"]["param_names"]
    assert "beit.embeddings.mask_token" in groups["layer_0_decay"]["param_names"]  # 3-D, not in unilm's skip list
    shared = "beit.encoder.relative_position_bias.relative_position_bias_table"
    assert shared in groups["layer_13_decay"]["param_names"]
    assert {"lm_head.weight"} <= set(groups["layer_13_decay"]["param_names"])


def test_base_segmentation_heads_get_the_top_id():
    model = _meta_model(hf_beit.BeitForSemanticSegmentation, "beit-base-patch16-640")
    groups = _check_against_unilm(model, decay=0.9, num_layers=12)
    top = {name for g in groups if g["group_name"].startswith("layer_13_") for name in g["param_names"]}
    assert {"fpn1.0.weight", "decode_head.classifier.weight", "auxiliary_head.classifier.bias"} <= top


def test_relative_tables_can_skip_weight_decay():
    model = _meta_model(hf_beit.BeitForImageClassification, "beit-base-patch16-224", num_labels=10)
    groups = layer_decay_parameter_groups(
        model, num_layers=12, weight_decay=0.05, layer_decay=0.65, decay_relative_position_tables=False
    )
    for group in groups:
        tables = [n for n in group["param_names"] if n.endswith("relative_position_bias_table")]
        if tables:
            assert group["group_name"].endswith("_no_decay") and group["weight_decay"] == 0.0


def test_transformers_in_memory_names_and_bare_model():
    config = transformers.BeitConfig(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=37, image_size=32, patch_size=8
    )
    model = transformers.BeitForImageClassification(config)  # 5.23 names: beit.layers.N.mlp.fc1 ...
    for name, _ in model.named_parameters():
        block = re.match(r"beit\.layers\.(\d+)\.", name)
        expected = 0 if name.startswith("beit.embeddings.") else int(block.group(1)) + 1 if block else 4
        assert get_layer_id(name, 3) == expected, name
    assert get_layer_id("encoder.layer.2.output.dense.weight", 3) == 3  # bare BeitModel
    with pytest.raises(ValueError, match="block 5"):
        get_layer_id("beit.encoder.layer.5.output.dense.weight", 3)


def test_frozen_parameters_are_left_out_and_bad_decay_rejected():
    model = hf_beit.BeitForImageClassification(hf_beit.BeitConfig(**_tiny()))
    model.beit.embeddings.requires_grad_(False)
    groups = layer_decay_parameter_groups(model, num_layers=2, weight_decay=0.1, layer_decay=0.5)
    assert not any(g["group_name"].startswith("layer_0_") for g in groups)
    with pytest.raises(ValueError, match="layer_decay"):
        layer_decay_parameter_groups(model, num_layers=2, weight_decay=0.1, layer_decay=0.0)


def _tiny() -> dict:
    return {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 37,
        "image_size": 32,
        "patch_size": 8,
        "use_relative_position_bias": True,
        "num_labels": 3,
    }


def test_optimizer_and_scheduler_keep_the_per_group_scale():
    model = hf_beit.BeitForImageClassification(hf_beit.BeitConfig(**_tiny()))
    optimizer = create_layer_decay_optimizer(model, learning_rate=1e-3, weight_decay=0.05, layer_decay=0.5)
    lrs = {g["group_name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["layer_0_decay"] == pytest.approx(1e-3 * 0.5**3)
    assert lrs["layer_2_no_decay"] == pytest.approx(1e-3 * 0.5)
    assert lrs["layer_3_decay"] == pytest.approx(1e-3)
    scheduler = transformers.get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=2, num_training_steps=10)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    factor = optimizer.param_groups[-1]["lr"] / 1e-3
    assert 0 < factor < 1
    for group in optimizer.param_groups:
        assert group["lr"] == pytest.approx(1e-3 * group["lr_scale"] * factor)


def test_plain_trainer_with_optimizer_cls_and_kwargs(tmp_path):
    model = hf_beit.BeitForImageClassification(hf_beit.BeitConfig(**_tiny()))
    arguments = transformers.TrainingArguments(
        output_dir=str(tmp_path), learning_rate=2e-3, use_cpu=True, report_to="none", max_steps=1
    )
    cls_and_kwargs = layer_decay_optimizer_cls_and_kwargs(model, learning_rate=2e-3, layer_decay=0.8)
    trainer = transformers.Trainer(model=model, args=arguments, optimizer_cls_and_kwargs=cls_and_kwargs)
    optimizer = trainer.create_optimizer()
    assert isinstance(optimizer, torch.optim.AdamW)
    lrs = {group["group_name"]: group["lr"] for group in optimizer.param_groups}
    assert lrs["layer_1_decay"] == pytest.approx(2e-3 * 0.8**2) and lrs["layer_3_no_decay"] == pytest.approx(2e-3)
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(list(model.parameters()))
