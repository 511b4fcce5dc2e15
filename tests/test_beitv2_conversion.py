"""BEiT v2 checkpoints in their original layouts convert into repos that reproduce the original models (<= 1e-4).

References: an independent functional forward of unilm's ``VisionTransformerForMaskedImageModelingCLS`` (the MIM
output and the CLS-pretraining branch) for the pre-training checkpoint stored under ``module``; timm's ``Beit`` for
the fine-tuned layout, whose architecture switches are checked against timm's ``beitv2_*`` model definitions; the
functional UPerNet reference for ADE20k.
"""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from huggingface_hub import ModelCard
from test_conversion_reference import _ln as layer_norm
from test_conversion_reference import (
    block,
    encoder,
    make_backbone,
    make_mim_checkpoint,
    make_upernet_checkpoint,
    mim_logits,
    upernet_logits,
)

import hf_beit
from hf_beit.cls_pretraining import CLS_HEAD_WEIGHTS_NAME
from hf_beit.configuration_beit import MODEL_SIZES
from hf_beit.conversion import RELEASED_CHECKPOINTS, ConversionError, convert_checkpoint, inspect_state_dict
from hf_beit.conversion.release_cards import release_facts

TOL = 1e-4
HEADS = 4


def make_v2_pretraining_checkpoint(depth=4, head_layers=2, **kwargs) -> dict:
    """unilm beit2 pre-training layout: v1's MIM keys plus ``cls_pt_layers.*`` (blocks without relative tables)."""
    sd = make_mim_checkpoint(depth=depth, **kwargs)
    donor = make_backbone(depth=head_layers, per_layer=False, **{k: v for k, v in kwargs.items() if k != "vocab"})
    for key, value in donor.items():
        if key.startswith("blocks."):
            sd["cls_pt_layers." + key.removeprefix("blocks.")] = value
    return sd


def cls_pretraining_logits(sd, pixel_values, heads, bool_masked_pos, early_layers):
    """The second output of unilm's VisionTransformerForMaskedImageModelingCLS (shared norm and lm_head)."""
    outputs = encoder(sd, pixel_values, heads, bool_masked_pos)
    x = torch.cat([outputs[-1][:, :1], outputs[early_layers - 1][:, 1:]], dim=1)
    window = pixel_values.shape[-1] // sd["patch_embed.proj.weight"].shape[-1]
    count = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("cls_pt_layers."))
    for i in range(count):
        x = block(sd, f"cls_pt_layers.{i}.", x, heads, window)
    return torch.nn.functional.linear(layer_norm(sd, "norm", x)[:, 1:], sd["lm_head.weight"], sd["lm_head.bias"])


def _convert(tmp_path, payload, name="out", **kwargs):
    checkpoint = tmp_path / f"{name}.pth"
    torch.save(payload, checkpoint)
    return convert_checkpoint(checkpoint, tmp_path / name, progress=False, log=lambda message: None, **kwargs)


def _max_diff(a, b):
    return (a - b).abs().max().item()


def test_pretraining_under_module_keeps_the_cls_head(tmp_path):
    torch.manual_seed(0)
    sd = make_v2_pretraining_checkpoint(depth=4)
    payload = {"module": sd, "optimizer": {"state": {}}, "epoch": 1599}
    result = _convert(tmp_path, payload, cls_head_early_layers=3)
    assert result.task == "mim" and (result.output / CLS_HEAD_WEIGHTS_NAME).is_file()
    assert any("CLS-pretraining head" in note and "block 3" in note for note in result.notes)
    pixel_values, mask = torch.randn(2, 3, 32, 32), torch.rand(2, 16) < 0.4
    expected = mim_logits(sd, pixel_values, HEADS, mask)
    model = hf_beit.BeitForMaskedImageModeling.from_pretrained(result.output).eval()
    stock, info = transformers.BeitForMaskedImageModeling.from_pretrained(result.output, output_loading_info=True)
    assert not info["unexpected_keys"] and not info["missing_keys"]  # the head's file stays out of the MIM model
    head = hf_beit.BeitClsPretrainingHead.from_pretrained(result.output)
    assert head.early_layers == 3 and head.shared_lm_head and len(head.layer) == 2
    with torch.no_grad():
        assert _max_diff(model(pixel_values, bool_masked_pos=mask).logits, expected) <= TOL
        assert _max_diff(stock.eval()(pixel_values, bool_masked_pos=mask).logits, expected) <= TOL
        actual = head(model, pixel_values, mask)
    reference = cls_pretraining_logits(sd, pixel_values, HEADS, mask, early_layers=3)
    assert actual.shape == (2, 16, 24) and _max_diff(actual, reference) <= TOL
    assert _max_diff(reference, expected) > 0.1  # the branch is not the MIM output again


def test_cls_head_dropped_on_request_or_when_retargeted(tmp_path):
    torch.manual_seed(0)
    sd = make_v2_pretraining_checkpoint(depth=4)
    dropped = _convert(tmp_path, {"module": sd}, name="dropped", cls_pretraining_head="drop")
    assert not (dropped.output / CLS_HEAD_WEIGHTS_NAME).exists()
    assert any("Dropped the CLS-pretraining head" in note for note in dropped.notes)
    retargeted = _convert(tmp_path, {"module": sd}, name="cls", task="classification", num_labels=10)
    assert not (retargeted.output / CLS_HEAD_WEIGHTS_NAME).exists()
    with pytest.raises(ConversionError, match="--cls-head-early-layers"):
        _convert(tmp_path, {"module": sd}, name="unknown")


@pytest.fixture
def tiny_sizes(monkeypatch):
    """The registry's base size shrunk (10 blocks so that v2's block 9 exists; 224 inputs as released)."""
    monkeypatch.setitem(
        MODEL_SIZES,
        "base",
        {"hidden_size": 32, "num_hidden_layers": 10, "num_attention_heads": 4, "intermediate_size": 128},
    )


def test_registry_pretraining_entry_gives_block_9_and_imagenet_normalisation(tmp_path, tiny_sizes):
    torch.manual_seed(0)
    sd = make_v2_pretraining_checkpoint(depth=10, window=14, patch=16, vocab=8192)
    result = _convert(tmp_path, {"module": sd}, model_name="beitv2_base_patch16_224_pt1k")
    head = hf_beit.BeitClsPretrainingHead.from_pretrained(result.output)
    assert head.early_layers == 9
    processor = json.loads((result.output / "preprocessor_config.json").read_text())
    assert processor["image_mean"] == [0.485, 0.456, 0.406] and processor["crop_size"]["height"] == 224
    card = ModelCard.load(result.output / "README.md")
    assert card.data.license == "mit" and "VQ-KD" in card.text and CLS_HEAD_WEIGHTS_NAME in card.text
    model = hf_beit.BeitForMaskedImageModeling.from_pretrained(result.output).eval()
    pixel_values, mask = torch.randn(1, 3, 224, 224), torch.rand(1, 196) < 0.4
    with torch.no_grad():
        actual = head(model, pixel_values, mask)
    assert _max_diff(actual, cls_pretraining_logits(sd, pixel_values, HEADS, mask, early_layers=9)) <= TOL


def _timm_v2(num_classes, seed=0):
    """timm's Beit with the switches of its beitv2_* definitions (rel. bias per layer, layer scale, mean pool)."""
    beit = pytest.importorskip("timm.models.beit")
    torch.manual_seed(seed)
    model = beit.Beit(
        img_size=224, patch_size=16, num_classes=num_classes, embed_dim=32, depth=10, num_heads=HEADS,
        use_abs_pos_emb=False, use_rel_pos_bias=True, init_values=1e-5, global_pool="avg",
    ).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.2)
    return model


def test_finetuned_registry_entry_matches_timm(tmp_path, tiny_sizes):
    model = _timm_v2(1000)
    tokens = 197
    weights = dict(model.state_dict())
    weights |= {
        k.replace("_bias_table", "_index"): torch.zeros(tokens, tokens, dtype=torch.long)
        for k in model.state_dict()
        if k.endswith("relative_position_bias_table")
    }
    result = _convert(tmp_path, {"module": weights, "epoch": 29}, model_name="beitv2-base-patch16-224-pt1k-ft21kto1k")
    assert result.timm_max_abs_diff is not None and result.timm_max_abs_diff <= TOL
    assert result.config.id2label[281] == "tabby, tabby cat" and "weights under `module`" in result.notes[0]
    pixel_values = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = model(pixel_values)
        for cls in (hf_beit.BeitForImageClassification, transformers.BeitForImageClassification):
            assert _max_diff(cls.from_pretrained(result.output).eval()(pixel_values).logits, expected) <= TOL
    processor = hf_beit.BeitImageProcessor.from_pretrained(result.output)
    assert list(processor.image_mean) == [0.485, 0.456, 0.406]  # timm's beitv2 cfgs too (unilm's crop: 224/256)


@pytest.mark.parametrize(
    ("timm_name", "entry", "classes"),
    [
        ("beitv2_base_patch16_224", "beitv2_base_patch16_224_pt1k_ft21kto1k", 1000),
        ("beitv2_base_patch16_224", "beitv2_base_patch16_224_pt1k_ft21k", 21841),
        ("beitv2_large_patch16_224", "beitv2_large_patch16_224_pt1k_ft1k", 1000),
    ],
)
def test_registry_architecture_equals_timm_beitv2(timm_name, entry, classes):
    """What the registry says about a fine-tuned v2 file is what the converter reads from timm's beitv2 model."""
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        model = timm.create_model(timm_name, pretrained=False, num_classes=classes)
    facts = inspect_state_dict(model.state_dict())
    assert facts == release_facts(RELEASED_CHECKPOINTS[entry])
    assert tuple(model.pretrained_cfg["mean"]) == (0.485, 0.456, 0.406)


def test_ade20k_entry_at_512(tmp_path, monkeypatch):
    monkeypatch.setitem(
        MODEL_SIZES,
        "base",
        {"hidden_size": 16, "num_hidden_layers": 12, "num_attention_heads": 2, "intermediate_size": 64},
    )
    torch.manual_seed(0)
    sd = make_upernet_checkpoint(num_classes=150, aux_channels=8, dim=16, depth=12, heads=2, window=32, patch=16)
    payload = {"meta": {"mmcv_version": "1.3.0"}, "state_dict": sd}
    result = _convert(tmp_path, payload, model_name="beitv2_base_patch16_224_pt1k_ft21ktoade20k")
    config = result.config
    assert config.image_size == 512 and list(config.out_indices) == [3, 5, 7, 11] and config.id2label[0] == "wall"
    processor = json.loads((result.output / "preprocessor_config.json").read_text())
    assert processor["size"] == {"shortest_edge": 512, "longest_edge": 2048} and processor["do_reduce_labels"]
    model = hf_beit.BeitForSemanticSegmentation.from_pretrained(result.output).eval()
    pixel_values = torch.randn(1, 3, 512, 512)
    expected, _ = upernet_logits(sd, pixel_values, 2, config.out_indices)
    with torch.no_grad():
        assert _max_diff(model(pixel_values).logits, expected) <= TOL
