"""DiT: Hub-style repos (model_type "beit", absolute positions) load into hf_beit's classes with stock
transformers' outputs; DiT's original unilm files convert with the registry's facts (heads, RVL-CDIP labels, 0.5
normalisation) and reproduce the functional reference forward."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from conftest import randomize_
from huggingface_hub import ModelCard
from test_conversion_reference import _layer_norm, classification_logits, make_backbone, mim_logits

import hf_beit
from hf_beit.configuration_beit import MODEL_SIZES
from hf_beit.conversion import convert_checkpoint

TOL = 1e-4
# microsoft/dit-* configs (transformers' DiT conversion), shrunk: absolute positions, layer scale 0.1, no relative
# bias, mean pooling, eps 1e-12, out_indices [3, 5, 7, 11] of 12 blocks.
DIT = {
    "hidden_size": 16, "num_hidden_layers": 12, "num_attention_heads": 2, "intermediate_size": 32, "image_size": 32,
    "patch_size": 8, "use_absolute_position_embeddings": True, "use_relative_position_bias": False,
    "use_shared_relative_position_bias": False, "layer_scale_init_value": 0.1, "use_mean_pooling": True,
    "out_indices": [3, 5, 7, 11], "drop_path_rate": 0.0,
}


def _stock_repo(tmp_path, cls_name, **overrides):
    model = randomize_(getattr(transformers, cls_name)(transformers.BeitConfig(**{**DIT, **overrides})).eval(), seed=5)
    model.save_pretrained(tmp_path / cls_name)
    return tmp_path / cls_name, model


def _max_diff(a, b):
    return (a - b).abs().max().item()


def test_hub_style_dit_repos_load_with_stock_outputs(tmp_path):
    classifier_dir, stock_classifier = _stock_repo(tmp_path, "BeitForImageClassification", num_labels=16)
    mim_dir, stock_mim = _stock_repo(tmp_path, "BeitForMaskedImageModeling", use_mask_token=True, vocab_size=40)
    pixel_values, mask = torch.randn(2, 3, 32, 32), torch.rand(2, 16) < 0.4
    with torch.no_grad():
        ours = hf_beit.BeitForImageClassification.from_pretrained(classifier_dir).eval()
        assert _max_diff(ours(pixel_values).logits, stock_classifier(pixel_values).logits) <= TOL
        mim = hf_beit.BeitForMaskedImageModeling.from_pretrained(mim_dir).eval()
        expected = stock_mim(pixel_values, bool_masked_pos=mask, output_hidden_states=True)
        assert _max_diff(mim(pixel_values, bool_masked_pos=mask).logits, expected.logits) <= TOL
        # detection taps (DiT's detectron2 backbone): after 0-based blocks 3, 5, 7, 11 = stock's hidden_states[i + 1]
        backbone = hf_beit.BeitBackbone.from_pretrained(mim_dir).eval()
        assert list(backbone.out_indices) == [3, 5, 7, 11]
        maps = backbone(pixel_values).feature_maps
        unmasked = stock_mim(pixel_values, output_hidden_states=True).hidden_states
    for block, feature in zip([3, 5, 7, 11], maps):
        tokens = unmasked[block + 1][:, 1:]
        assert _max_diff(feature, tokens.transpose(1, 2).reshape(2, 16, 4, 4)) <= TOL


@pytest.fixture
def tiny_base(monkeypatch):
    monkeypatch.setitem(
        MODEL_SIZES,
        "base",
        {"hidden_size": 16, "num_hidden_layers": 12, "num_attention_heads": 2, "intermediate_size": 64},
    )


def test_hub_repo_conversion_fixes_rvl_cdip_labels_and_processor(tmp_path, tiny_base):
    folder, _ = _stock_repo(
        tmp_path, "BeitForImageClassification", num_labels=16, image_size=224, patch_size=16, intermediate_size=64
    )
    result = convert_checkpoint(
        folder, tmp_path / "out", model_name="microsoft/dit-base-finetuned-rvlcdip", progress=False, log=lambda m: None
    )
    assert result.reference_max_abs_diff <= TOL
    assert result.config.id2label[0] == "letter" and result.config.id2label[15] == "memo"
    processor = json.loads((result.output / "preprocessor_config.json").read_text())
    assert processor["image_mean"] == [0.5, 0.5, 0.5] and processor["size"] == {"shortest_edge": 256}
    card = ModelCard.load(result.output / "README.md")
    assert card.data.license == "mit" and "aharley/rvl_cdip" in card.data.datasets
    assert [r.metric_value for r in card.data.eval_results] == [92.11]


def test_original_dit_files_convert(tmp_path, tiny_base):
    torch.manual_seed(0)
    backbone = make_backbone(dim=16, depth=12, heads=2, window=14, patch=16, abs_pos=True, per_layer=False)
    mim = backbone | {"mask_token": torch.randn(1, 1, 16) * 0.1}
    mim |= _layer_norm("norm", 16) | {"lm_head.weight": torch.randn(8192, 16) * 0.1, "lm_head.bias": torch.zeros(8192)}
    torch.save({"model": mim}, tmp_path / "dit-base-224-p16-500k-62d53a.pth")
    result = convert_checkpoint(
        tmp_path / "dit-base-224-p16-500k-62d53a.pth", tmp_path / "mim", model_name="dit-base", progress=False,
        log=lambda m: None,
    )
    assert result.config.use_absolute_position_embeddings and result.config.num_attention_heads == 2
    pixel_values, mask = torch.randn(1, 3, 224, 224), torch.rand(1, 196) < 0.4
    with torch.no_grad():
        actual = hf_beit.BeitForMaskedImageModeling.from_pretrained(result.output).eval()(pixel_values, mask).logits
    assert _max_diff(actual, mim_logits(mim, pixel_values, 2, mask)) <= TOL

    classifier = (
        backbone | _layer_norm("fc_norm", 16) | {"head.weight": torch.randn(16, 16), "head.bias": torch.randn(16)}
    )
    torch.save({"model": classifier}, tmp_path / "rvlcdip_dit-b.pth")
    result = convert_checkpoint(
        tmp_path / "rvlcdip_dit-b.pth", tmp_path / "cls", model_name="rvlcdip_dit-b", progress=False, log=lambda m: None
    )
    assert result.timm_max_abs_diff <= TOL and result.config.id2label[4] == "advertisement"
    with torch.no_grad():
        actual = hf_beit.BeitForImageClassification.from_pretrained(result.output).eval()(pixel_values).logits
    assert _max_diff(actual, classification_logits(classifier, pixel_values, 2)) <= TOL
