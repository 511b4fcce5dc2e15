"""hf_beit <-> stock transformers: repos load both ways with no missing/unexpected keys and identical outputs."""

from __future__ import annotations

import pytest
import torch
import transformers
from conftest import TINY, random_pixels, randomize_

import hf_beit

# The variants the issue names: shared and per-layer relative bias, absolute positions, CLS pooling, no layer scale.
VARIANTS = {
    "shared_relative": {"use_shared_relative_position_bias": True, "use_mask_token": True},
    "per_layer_relative": {"use_relative_position_bias": True},
    "absolute_cls_pooling_no_layer_scale": {
        "use_absolute_position_embeddings": True, "use_mean_pooling": False, "layer_scale_init_value": 0.0
    },
    "everything": {
        "use_absolute_position_embeddings": True,
        "use_relative_position_bias": True,
        "use_shared_relative_position_bias": True,
        "use_mask_token": True,
    },
}
TASKS = {
    "classification": (transformers.BeitForImageClassification, hf_beit.BeitForImageClassification),
    "mim": (transformers.BeitForMaskedImageModeling, hf_beit.BeitForMaskedImageModeling),
}


def _forward(model, pixels, task, **kwargs):
    inputs = {"pixel_values": pixels, **kwargs}
    if task == "mim":
        inputs["bool_masked_pos"] = torch.arange(16).repeat(pixels.shape[0], 1) % 3 == 0
    with torch.no_grad():
        return model(**inputs, output_hidden_states=True)


def _load(cls, path, attn):
    model, info = cls.from_pretrained(path, attn_implementation=attn, output_loading_info=True)
    return model.eval(), info


def _assert_clean(info):
    assert not info["missing_keys"], info["missing_keys"]
    assert not info["unexpected_keys"], info["unexpected_keys"]
    assert not info["mismatched_keys"], info["mismatched_keys"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("direction", ["stock_to_ours", "ours_to_stock"])
def test_repo_round_trip_same_outputs(tmp_path, variant, task, direction):
    if task == "mim":
        VARIANTS_MIM = {**VARIANTS[variant], "use_mask_token": True}
        overrides = VARIANTS_MIM
    else:
        overrides = VARIANTS[variant]
    stock_cls, ours_cls = TASKS[task]
    config = dict(TINY, **overrides)
    if direction == "stock_to_ours":
        writer, reader = stock_cls._from_config(transformers.BeitConfig(**config)), ours_cls
    else:
        writer, reader = ours_cls(hf_beit.BeitConfig(**config)), stock_cls
    randomize_(writer).eval().save_pretrained(tmp_path)
    pixels = random_pixels()
    outputs = {}
    for attn in ("eager", "sdpa"):
        stock_side, info = _load(reader, tmp_path, attn)
        _assert_clean(info)
        ours = stock_side if reader is ours_cls else _load(ours_cls, tmp_path, attn)[0]
        stock = stock_side if reader is stock_cls else _load(stock_cls, tmp_path, attn)[0]
        a, b = _forward(ours, pixels, task), _forward(stock, pixels, task)
        torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)
        assert len(a.hidden_states) == TINY["num_hidden_layers"] + 1
        for mine, theirs in zip(a.hidden_states, b.hidden_states):
            torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)
        outputs[attn] = a.logits
    torch.testing.assert_close(outputs["eager"], outputs["sdpa"], atol=1e-5, rtol=0)


def test_attentions_match_stock_eager_and_sdpa_falls_back(tmp_path):
    config = dict(TINY, use_relative_position_bias=True, use_shared_relative_position_bias=True)
    randomize_(hf_beit.BeitForImageClassification(hf_beit.BeitConfig(**config))).save_pretrained(tmp_path)
    pixels = random_pixels()
    stock, _ = _load(transformers.BeitForImageClassification, tmp_path, "eager")
    expected = stock(pixel_values=pixels, output_attentions=True).attentions
    for attn in ("eager", "sdpa"):  # stock SDPA returns (); we fall back to eager for that call
        ours, _ = _load(hf_beit.BeitForImageClassification, tmp_path, attn)
        got = ours(pixels, output_attentions=True).attentions
        assert len(got) == TINY["num_hidden_layers"]
        for mine, theirs in zip(got, expected):
            assert mine.shape == (2, 4, 17, 17)
            torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=0)


def test_segmentation_repo_written_by_stock_loads_without_key_changes(tmp_path):
    config = dict(TINY, num_hidden_layers=6, use_relative_position_bias=True, out_indices=[2, 3, 4, 5])
    stock = randomize_(transformers.BeitForSemanticSegmentation._from_config(transformers.BeitConfig(**config)))
    stock.save_pretrained(tmp_path)
    ours, info = hf_beit.BeitForSemanticSegmentation.from_pretrained(tmp_path, output_loading_info=True)
    _assert_clean(info)
    stock_keys = set(transformers.BeitForSemanticSegmentation.from_pretrained(tmp_path).state_dict())
    assert len(ours.state_dict()) == len(stock.state_dict()) and stock_keys


def test_config_json_interchangeable(tmp_path):
    ours = hf_beit.BeitConfig.from_preset("beit-base-patch16-640")
    ours.save_pretrained(tmp_path)
    stock = transformers.BeitConfig.from_pretrained(tmp_path)
    assert stock.out_indices == [3, 5, 7, 11] and stock.layer_norm_eps == 1e-6 and stock.image_size == 640
    back = hf_beit.BeitConfig.from_pretrained(tmp_path)
    assert back.to_dict() == ours.to_dict()


def test_training_gradients_match_stock(tmp_path):
    """The fast inference paths never leak into training: loss and every gradient equal stock transformers'."""
    config = dict(TINY, use_relative_position_bias=True, use_shared_relative_position_bias=True)
    ours = randomize_(hf_beit.BeitForImageClassification(hf_beit.BeitConfig(**config))).train()
    ours.save_pretrained(tmp_path)
    stock = transformers.BeitForImageClassification.from_pretrained(tmp_path, attn_implementation="eager").train()
    pixels, labels = random_pixels(), torch.tensor([0, 2])
    mine, theirs = ours(pixels, labels=labels).loss, stock(pixel_values=pixels, labels=labels).loss
    torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=0)
    mine.backward()
    theirs.backward()
    checked = 0
    for ours_param, stock_param in [
        (ours.classifier.weight, stock.classifier.weight),
        (
            ours.beit.embeddings.patch_embeddings.projection.weight,
            stock.beit.embeddings.patch_embeddings.projection.weight,
        ),
        (ours.beit.embeddings.cls_token, stock.beit.embeddings.cls_token),
    ]:
        torch.testing.assert_close(ours_param.grad, stock_param.grad, atol=1e-6, rtol=1e-4)
        checked += 1
    total_ours = sum(p.grad.abs().sum() for p in ours.parameters() if p.grad is not None)
    total_stock = sum(p.grad.abs().sum() for p in stock.parameters() if p.grad is not None)
    torch.testing.assert_close(total_ours, total_stock, rtol=1e-5, atol=0)
    assert checked == 3 and all(p.grad is not None for p in ours.parameters())


def test_stock_refuses_our_segmentation_repos_instead_of_giving_other_masks(tmp_path):
    """Stock's segmentation model would take its features two blocks before ours from the same numbers (README
    "Feature taps"), so a segmentation config.json of ours fails to load there instead of giving other masks."""
    config = dict(TINY, num_hidden_layers=6, use_relative_position_bias=True, out_indices=[1, 2, 3, 5])
    randomize_(hf_beit.BeitForSemanticSegmentation(hf_beit.BeitConfig(**config))).save_pretrained(tmp_path / "seg")
    hf_beit.BeitImageProcessor().save_pretrained(tmp_path / "seg")
    with pytest.raises(ValueError, match="out_features and out_indices should correspond"):
        transformers.pipeline("image-segmentation", model=str(tmp_path / "seg"))
    assert hf_beit.BeitForSemanticSegmentation.from_pretrained(tmp_path / "seg").config.out_indices == [1, 2, 3, 5]
    # The same taps in a config that is not a segmentation model's (a backbone's) stay loadable in stock.
    hf_beit.BeitConfig(**config).save_pretrained(tmp_path / "backbone")
    assert transformers.BeitConfig.from_pretrained(tmp_path / "backbone").out_indices == [1, 2, 3, 5]
