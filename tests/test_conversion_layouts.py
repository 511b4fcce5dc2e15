"""Every original checkpoint layout converts into a repo that reproduces the original model (max |diff| <= 1e-4).

References: timm for classification; the independent functional model in test_conversion_reference.py for MIM and
segmentation. MIM/classification repos are also loaded with stock transformers.
"""

from __future__ import annotations

import argparse
import json

import pytest
import torch
import transformers
from safetensors.torch import load_file
from test_conversion_reference import (
    encoder,
    make_mim_checkpoint,
    make_upernet_checkpoint,
    mim_logits,
    segmentation_loss,
    upernet_logits,
)

import hf_beit
from hf_beit.conversion import convert_checkpoint
from hf_beit.relative_position import resize_relative_position_table

TOL = 1e-4
HEADS = 4


def _convert(tmp_path, payload, name="out", **kwargs):
    checkpoint = tmp_path / f"{name}.pth"
    torch.save(payload, checkpoint)
    return convert_checkpoint(checkpoint, tmp_path / name, progress=False, log=lambda message: None, **kwargs)


def _timm_beit(seed=0, **kwargs):
    beit = pytest.importorskip("timm.models.beit")
    torch.manual_seed(seed)
    args = {"img_size": 32, "patch_size": 8, "num_classes": 7, "embed_dim": 32, "depth": 3, "num_heads": HEADS} | kwargs
    model = beit.Beit(**args).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.2)
    return model


def _with_index_buffers(state_dict, window):
    """Original files also carry relative_position_index buffers (timm does not save them)."""
    tokens = window * window + 1
    extra = {
        k.replace("_bias_table", "_index"): torch.zeros(tokens, tokens, dtype=torch.long)
        for k in state_dict
        if k.endswith("relative_position_bias_table")
    }
    return dict(state_dict) | extra


def _max_diff(a, b):
    return (a - b).abs().max().item()


def _assert_classifiers_reproduce(timm_model, output) -> None:
    """hf_beit's and stock transformers' classifiers loaded from ``output`` give the timm model's logits."""
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = timm_model(pixel_values)
    for cls in (hf_beit.BeitForImageClassification, transformers.BeitForImageClassification):
        with torch.no_grad():
            actual = cls.from_pretrained(output).eval()(pixel_values=pixel_values).logits
        assert _max_diff(actual, expected) <= TOL, cls


def test_mim_shared_bias(tmp_path):
    torch.manual_seed(0)
    sd = make_mim_checkpoint(depth=3)
    payload = {"model": sd, "optimizer": {"state": {}}, "epoch": 4, "args": argparse.Namespace(lr=1.5e-3)}
    result = _convert(tmp_path, payload)
    config = result.config
    assert result.task == "mim" and config.use_shared_relative_position_bias and config.use_mask_token
    assert not config.use_relative_position_bias and config.vocab_size == 24 and config.layer_norm_eps == 1e-6
    pixel_values, mask = torch.randn(2, 3, 32, 32), torch.rand(2, 16) < 0.4
    expected = mim_logits(sd, pixel_values, HEADS, mask)
    for cls in (hf_beit.BeitForMaskedImageModeling, transformers.BeitForMaskedImageModeling):
        model = cls.from_pretrained(result.output).eval()
        with torch.no_grad():
            actual = model(pixel_values=pixel_values, bool_masked_pos=mask).logits
        assert actual.shape == (2, 16, 24) and _max_diff(actual, expected) <= TOL, cls


def test_finetuned_per_layer_bias_matches_timm(tmp_path):
    model = _timm_beit(init_values=0.1, use_abs_pos_emb=False, use_rel_pos_bias=True)
    result = _convert(tmp_path, {"model": _with_index_buffers(model.state_dict(), 4)})
    assert result.config.use_relative_position_bias and result.config.use_mean_pooling
    assert result.timm_max_abs_diff is not None and result.timm_max_abs_diff <= TOL
    _assert_classifiers_reproduce(model, result.output)
    assert json.loads((result.output / "config.json").read_text())["architectures"] == ["BeitForImageClassification"]


def test_absolute_position_cls_pooling_variant(tmp_path):
    model = _timm_beit(init_values=None, use_abs_pos_emb=True, use_rel_pos_bias=False, global_pool="token")
    # Without relative tables the head count is not in the weights: it is passed (default would be hidden/64).
    result = _convert(tmp_path, {"model": model.state_dict()}, num_attention_heads=HEADS)
    config = result.config
    assert config.use_absolute_position_embeddings and not config.use_mean_pooling
    assert config.layer_scale_init_value == 0 and not config.use_relative_position_bias
    assert result.timm_max_abs_diff <= TOL
    _assert_classifiers_reproduce(model, result.output)


def test_deepspeed_module_container_and_ema(tmp_path):
    live = _timm_beit(seed=1, init_values=0.1, use_rel_pos_bias=True, use_abs_pos_emb=False)
    ema = _timm_beit(seed=2, init_values=0.1, use_rel_pos_bias=True, use_abs_pos_emb=False)
    payload = {
        "module": _with_index_buffers(live.state_dict(), 4),
        "model_ema": ema.state_dict(),
        "buffer_names": ["x"],
        "ds_version": "0.5.8",
        "epoch": 9,
    }
    pixel_values = torch.randn(1, 3, 32, 32)
    for name, source, kwargs in (("live", live, {}), ("ema", ema, {"use_ema": True})):
        result = _convert(tmp_path, payload, name=name, **kwargs)
        with torch.no_grad():
            actual = hf_beit.BeitForImageClassification.from_pretrained(result.output).eval()(pixel_values).logits
            assert _max_diff(actual, source(pixel_values)) <= TOL
    # DataParallel-style "module." prefixes on a bare state dict.
    prefixed = {f"module.{k}": v for k, v in live.state_dict().items()}
    result = _convert(tmp_path, prefixed, name="prefixed")
    assert result.timm_max_abs_diff <= TOL


def test_mmseg_upernet(tmp_path):
    torch.manual_seed(0)
    sd = make_upernet_checkpoint(num_classes=5, depth=6, window=8)
    payload = {
        "meta": {"mmcv_version": "1.3.0", "CLASSES": ("a", "b", "c", "d", "e")},
        "state_dict": sd,
        "optimizer": {"state": {}, "param_groups": []},
    }
    result = _convert(tmp_path, payload)
    config = result.config
    assert result.task == "segmentation" and list(config.out_indices) == [1, 2, 3, 5]
    assert config.num_labels == 5 and config.auxiliary_channels == 16 and config.image_size == 64
    model = hf_beit.BeitForSemanticSegmentation.from_pretrained(result.output).eval()
    pixel_values, labels = torch.randn(2, 3, 64, 64), torch.randint(0, 5, (2, 64, 64))
    labels[:, :4] = 255
    expected, expected_aux = upernet_logits(sd, pixel_values, HEADS, config.out_indices)
    with torch.no_grad():
        outputs = model(pixel_values=pixel_values, labels=labels)
    assert outputs.logits.shape == expected.shape == (2, 5, 32, 32) and _max_diff(outputs.logits, expected) <= TOL
    assert abs(outputs.loss.item() - segmentation_loss(expected, expected_aux, labels).item()) <= TOL
    processor = json.loads((result.output / "preprocessor_config.json").read_text())
    assert processor["do_reduce_labels"] and processor["image_mean"] == [0.485, 0.456, 0.406]


def test_mim_initialises_classification_with_expanded_table(tmp_path):
    torch.manual_seed(0)
    sd = make_mim_checkpoint(depth=2)
    result = _convert(tmp_path, {"model": sd}, task="classification", num_labels=1000)
    config = result.config
    assert config.use_relative_position_bias and not config.use_shared_relative_position_bias
    assert config.id2label[281] == "tabby, tabby cat" and not config.use_mask_token
    assert result.new_head_keys and all(k.startswith(("classifier", "beit.pooler")) for k in result.new_head_keys)
    model = hf_beit.BeitForImageClassification.from_pretrained(result.output).eval()
    pixel_values = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        hidden = model.beit(pixel_values=pixel_values).last_hidden_state
    assert _max_diff(hidden, encoder(sd, pixel_values, HEADS)[-1]) <= TOL


def test_resolution_change_resizes_tables(tmp_path):
    model = _timm_beit(init_values=0.1, use_rel_pos_bias=True, use_abs_pos_emb=False)
    result = _convert(tmp_path, {"model": model.state_dict()}, image_size=48)
    assert result.config.image_size == 48 and result.timm_max_abs_diff is None
    weights = load_file(result.output / "model.safetensors")
    key = "beit.encoder.layer.1.attention.attention.relative_position_bias.relative_position_bias_table"
    table = model.state_dict()["blocks.1.attn.relative_position_bias_table"]
    expected = resize_relative_position_table(table.double(), (4, 4), (6, 6)).float()
    assert weights[key].shape == (11 * 11 + 3, HEADS) and torch.equal(weights[key], expected)
    with torch.no_grad():
        logits = hf_beit.BeitForImageClassification.from_pretrained(result.output)(torch.randn(1, 3, 48, 48)).logits
    assert logits.shape == (1, 7) and torch.isfinite(logits).all()


def test_mim_initialises_segmentation_at_new_resolution(tmp_path):
    torch.manual_seed(0)
    sd = make_mim_checkpoint(depth=4)
    result = _convert(tmp_path, {"model": sd}, task="segmentation", image_size=48, num_labels=150)
    config = result.config
    assert config.image_size == 48 and config.id2label[0] == "wall" and len(config.id2label) == 150
    assert result.new_head_keys and all(
        k.startswith(("fpn", "decode_head", "auxiliary_head")) for k in result.new_head_keys
    )
    shared = sd["rel_pos_bias.relative_position_bias_table"]
    resized = resize_relative_position_table(shared.double(), (4, 4), (6, 6)).float()
    weights = load_file(result.output / "model.safetensors")
    tables = [v for k, v in weights.items() if k.endswith("relative_position_bias_table")]
    assert len(tables) == 4 and all(torch.equal(table, resized) for table in tables)
    model = hf_beit.BeitForSemanticSegmentation.from_pretrained(result.output).eval()
    pixel_values = torch.randn(1, 3, 48, 48)
    reference = sd | {"rel_pos_bias.relative_position_bias_table": resized}
    with torch.no_grad():
        hidden = model.beit(pixel_values=pixel_values).last_hidden_state
    assert _max_diff(hidden, encoder(reference, pixel_values, HEADS)[-1]) <= TOL
