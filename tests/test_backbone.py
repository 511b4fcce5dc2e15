"""BeitBackbone against stock transformers' BeitBackbone on the same weights (same tensors for the same stage names),
against the models whose repos it loads, and inside a transformers model that builds it with ``load_backbone``."""

from __future__ import annotations

import pytest
import torch
import transformers
from conftest import TINY, random_pixels, randomize_, tiny_config
from safetensors.torch import load_file
from transformers.testing_utils import CaptureLogger

import hf_beit

LAYOUTS = {
    "relative": {"use_relative_position_bias": True},
    "shared+absolute, CLS pooling": {
        "use_shared_relative_position_bias": True,
        "use_absolute_position_embeddings": True,
        "use_mean_pooling": False,
    },
}


def _ours(**overrides) -> hf_beit.BeitBackbone:
    return randomize_(hf_beit.BeitBackbone(tiny_config(**{**LAYOUTS["relative"], **overrides}))).eval()


def _stock_from(path, **kwargs):
    model, info = transformers.BeitBackbone.from_pretrained(
        path, attn_implementation="eager", output_loading_info=True, **kwargs
    )
    return model.eval(), info


def _assert_clean(info) -> None:
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info


def _close(mine, theirs) -> None:
    assert len(mine) == len(theirs)
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def _by_hand(tokens: torch.Tensor) -> torch.Tensor:
    """(B, 1 + 16, C) tokens of the 4x4 grid -> (B, C, 4, 4), written independently of the package."""
    return tokens[:, 1:].reshape(tokens.shape[0], 4, 4, tokens.shape[2]).permute(0, 3, 1, 2)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("reshape", [True, False])
def test_same_stage_names_give_stock_tensors(tmp_path, layout, reshape):
    names = ["stage1", "stage3", "stage4"]
    ours = randomize_(
        hf_beit.BeitBackbone(tiny_config(**LAYOUTS[layout], out_features=names, reshape_hidden_states=reshape))
    )
    ours.eval().save_pretrained(tmp_path)
    stock, info = _stock_from(tmp_path, out_features=names)
    _assert_clean(info)
    assert ours.out_features == stock.out_features == names and ours.stage_names == stock.stage_names
    assert ours.out_indices == [0, 2, 3] and stock.out_indices == [1, 3, 4]  # the numbers differ, the tensors do not
    assert ours.channels == stock.channels == [32, 32, 32]
    pixels = random_pixels()
    with torch.no_grad():
        mine = ours(pixels, output_hidden_states=True, output_attentions=True)
        theirs = stock(pixel_values=pixels, output_hidden_states=True, output_attentions=True)
    assert mine.feature_maps[0].shape == ((2, 32, 4, 4) if reshape else (2, 17, 32))
    _close(mine.feature_maps, theirs.feature_maps)
    _close(mine.hidden_states, theirs.hidden_states)
    _close(mine.attentions, theirs.attentions)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_stock_saved_backbone_with_fpn_loads_cleanly(tmp_path, layout):
    config = transformers.BeitConfig(
        **{**TINY, **LAYOUTS[layout]}, out_features=["stage1", "stage2", "stage3", "stage4"], add_fpn=True
    )
    stock = randomize_(transformers.BeitBackbone._from_config(config, attn_implementation="eager")).eval()
    stock.save_pretrained(tmp_path)
    ours, info = hf_beit.BeitBackbone.from_pretrained(
        tmp_path, out_features=stock.out_features, output_loading_info=True
    )
    _assert_clean(info)
    assert ours.out_indices == [0, 1, 2, 3] and ours.out_features == stock.out_features
    pixels = random_pixels()
    with torch.no_grad():
        mine, theirs = ours.eval()(pixels).feature_maps, stock(pixel_values=pixels).feature_maps
    assert [tuple(m.shape[-2:]) for m in mine] == [(16, 16), (8, 8), (4, 4), (2, 2)]  # 4x, 2x, 1x, 0.5x
    _close(mine, theirs)


def test_segmentation_repo_gives_backbone_and_fpn(tmp_path):
    segmenter = randomize_(
        hf_beit.BeitForSemanticSegmentation(tiny_config(**LAYOUTS["relative"], out_indices=[0, 1, 2, 3]))
    )
    segmenter.eval().save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    assert any(key.startswith("decode_head.") for key in saved)  # heads that the backbone drops
    with CaptureLogger(transformers.modeling_utils.logger) as log:
        ours, info = hf_beit.BeitBackbone.from_pretrained(tmp_path, add_fpn=True, output_loading_info=True)
    assert "LOAD REPORT" not in log.out
    _assert_clean(info)
    pixels = random_pixels()
    with torch.no_grad():
        hidden = segmenter.beit(pixels, output_hidden_states=True).hidden_states
        expected = segmenter.backbone_features(hidden, (4, 4))
        mine = ours.eval()(pixels).feature_maps
    _close(mine, expected)
    with pytest.raises(ValueError, match="out_features and out_indices should correspond"):
        _stock_from(tmp_path)  # stock refuses a segmentation config.json of ours (README "Feature taps")


@pytest.mark.parametrize(
    "model_class, overrides",
    [
        (hf_beit.BeitForImageClassification, {"use_relative_position_bias": True}),
        (hf_beit.BeitForMaskedImageModeling, {"use_shared_relative_position_bias": True, "use_mask_token": True}),
        (hf_beit.BeitForMaskedImageModeling, {"use_shared_relative_position_bias": True, "use_mean_pooling": False}),
    ],
)
def test_classification_and_mim_repos_load_without_noise(tmp_path, model_class, overrides):
    source = randomize_(model_class(tiny_config(**overrides, out_indices=[1, 3]))).eval()
    source.save_pretrained(tmp_path)
    with CaptureLogger(transformers.modeling_utils.logger) as log:
        ours, info = hf_beit.BeitBackbone.from_pretrained(tmp_path, output_loading_info=True)
    assert "LOAD REPORT" not in log.out
    _assert_clean(info)
    pixels = random_pixels()
    with torch.no_grad():
        hidden = source.beit(pixels, output_hidden_states=True).hidden_states
        mine = ours.eval()(pixels).feature_maps
    _close(mine, [_by_hand(hidden[2]), _by_hand(hidden[4])])


def test_hidden_state_selection_and_tuples_like_stock(tmp_path):
    ours = _ours(out_indices=[1])
    ours.save_pretrained(tmp_path)
    stock, _ = _stock_from(tmp_path, out_features=ours.out_features)
    pixels = random_pixels()
    with torch.no_grad():
        mine = ours(pixels, output_hidden_states=[0, -1])
        theirs = stock(pixel_values=pixels, output_hidden_states=[0, -1])
        as_tuple = ours(pixels, output_hidden_states=True, return_dict=False)
    assert [h is None for h in mine.hidden_states] == [h is None for h in theirs.hidden_states]
    assert [h is None for h in mine.hidden_states] == [False, True, True, True, False]
    _close([mine.hidden_states[0], mine.hidden_states[4]], [theirs.hidden_states[0], theirs.hidden_states[4]])
    _close(mine.feature_maps, theirs.feature_maps)
    assert len(as_tuple) == 2 and len(as_tuple[1]) == 5
    _close(as_tuple[0], mine.feature_maps)


def _count_block_calls(model, call) -> int:
    calls = []
    handles = [block.register_forward_hook(lambda *_: calls.append(1)) for block in model.beit.encoder.layer]
    with torch.no_grad():
        call()
    for handle in handles:
        handle.remove()
    return len(calls)


def test_only_the_blocks_up_to_the_last_tap_run():
    ours = _ours(out_indices=[0, 1])
    pixels = random_pixels()
    assert _count_block_calls(ours, lambda: ours(pixels)) == 2
    assert _count_block_calls(ours, lambda: ours(pixels, output_hidden_states=[3])) == 3
    assert _count_block_calls(ours, lambda: ours(pixels, output_hidden_states=True)) == 4
    assert _count_block_calls(ours, lambda: ours(pixels, output_attentions=True)) == 4
    with torch.no_grad():
        full = ours.beit(pixels, output_hidden_states=True).hidden_states
        _close(ours(pixels).feature_maps, [_by_hand(full[1]), _by_hand(full[2])])


def test_other_resolution_needs_interpolate_pos_encoding():
    ours = _ours(out_indices=[1, 3])
    pixels = random_pixels(size=48)
    with pytest.raises(ValueError, match="interpolate_pos_encoding=True"):
        ours(pixels)
    with torch.no_grad():
        maps = ours(pixels, interpolate_pos_encoding=True).feature_maps
        hidden = ours.beit(pixels, output_hidden_states=True, interpolate_pos_encoding=True).hidden_states
    assert maps[0].shape == (2, 32, 6, 6)
    _close(maps, [h[:, 1:].reshape(2, 6, 6, 32).permute(0, 3, 1, 2) for h in (hidden[2], hidden[4])])


def test_fpn_needs_four_taps_and_maps(tmp_path):
    with pytest.raises(ValueError, match="exactly 4 integers"):
        tiny_config(add_fpn=True, out_indices=[1, 2])
    with pytest.raises(ValueError, match="reshape_hidden_states=True"):
        hf_beit.BeitBackbone(tiny_config(add_fpn=True, out_indices=[0, 1, 2, 3], reshape_hidden_states=False))
    hf_beit.BeitForImageClassification(tiny_config()).save_pretrained(tmp_path)  # one tap: the last block
    with pytest.raises(ValueError, match=r"add_fpn=True needs exactly 4 out_indices .*got out_indices=\[3\]"):
        hf_beit.BeitBackbone.from_pretrained(tmp_path, add_fpn=True)


def test_transformers_upernet_builds_and_runs_our_backbone(tmp_path):
    """UperNet calls load_backbone -> AutoBackbone.from_config: with an hf_beit config it gets BeitBackbone, whose
    outputs feed the head exactly as stock's backbone does on the same weights."""
    hf_beit.register_auto_classes()
    backbone_config = tiny_config(**LAYOUTS["relative"], out_indices=[0, 1, 2, 3], add_fpn=True)
    heads = {"hidden_size": 16, "auxiliary_channels": 8, "auxiliary_in_channels": 32, "num_labels": 3}
    ours = transformers.UperNetForSemanticSegmentation(
        transformers.UperNetConfig(backbone_config=backbone_config, **heads)
    )
    assert isinstance(ours.backbone, hf_beit.BeitBackbone)
    randomize_(ours).eval().backbone.save_pretrained(tmp_path)
    stock_backbone = {k: v for k, v in backbone_config.to_dict().items() if k not in ("out_indices", "out_features")}
    stock_config = transformers.BeitConfig(**stock_backbone, out_features=backbone_config.out_features)
    stock = transformers.UperNetForSemanticSegmentation(
        transformers.UperNetConfig(backbone_config=stock_config, **heads)
    )
    stock.backbone = _stock_from(tmp_path, out_features=backbone_config.out_features)[0]
    head_weights = {k: v for k, v in ours.state_dict().items() if not k.startswith("backbone.")}
    assert not stock.load_state_dict(head_weights, strict=False).unexpected_keys
    pixels = random_pixels()
    with torch.no_grad():
        mine, theirs = ours(pixel_values=pixels).logits, stock.eval()(pixel_values=pixels).logits
    assert mine.shape == (2, 3, 32, 32)
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)


def test_backbone_and_forward_intermediates_compile_without_graph_breaks():
    ours = _ours(out_indices=[0, 1, 2, 3], add_fpn=True)
    pixels = random_pixels()
    compiled = torch.compile(ours, backend="eager", fullgraph=True)
    intermediates = torch.compile(
        lambda x: ours.beit.forward_intermediates(x, indices=[1, 2], stop_early=True), backend="eager", fullgraph=True
    )
    with torch.no_grad():
        _close(compiled(pixels).feature_maps, ours(pixels).feature_maps)
        traced, eager = intermediates(pixels), ours.beit.forward_intermediates(pixels, indices=[1, 2], stop_early=True)
    _close([traced[0], *traced[1]], [eager[0], *eager[1]])
