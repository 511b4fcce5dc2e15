"""``BeitModel.forward_intermediates`` against timm's on the same weights (mapped with the conversion key mapping),
against ``output_hidden_states``, and BeitBackbone against timm's ``features_only`` (same block numbers)."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from conftest import TINY, random_pixels, randomize_, tiny_config
from test_conversion_layouts import _timm_beit

import hf_beit
from hf_beit.conversion import convert_state_dict

timm_features = pytest.importorskip("timm.models._features")


@functools.cache
def _timm_and_ours(global_pool: str):
    """A random tiny timm BEiT and the same weights in hf_beit (``token`` pooling: a real final norm); read-only."""
    geometry = {"depth": 4, "num_classes": 3, "mlp_ratio": 37 / 32, "init_values": 0.1, "use_abs_pos_emb": False}
    theirs = _timm_beit(**geometry, use_rel_pos_bias=True, global_pool=global_pool)
    config = tiny_config(use_relative_position_bias=True, use_mean_pooling=global_pool == "avg")
    ours = hf_beit.BeitForImageClassification(config).eval()
    ours.load_state_dict(convert_state_dict(theirs.state_dict(), "classification"), strict=True)
    return theirs, ours


def _assert_same(mine, theirs) -> None:
    if isinstance(theirs, torch.Tensor):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)
        return
    assert type(mine) is type(theirs) and len(mine) == len(theirs)
    for a, b in zip(mine, theirs):
        _assert_same(a, b)


CASES = [
    {},
    {"indices": 2},
    {"indices": [0, -1]},
    {"indices": [3, 1, 3], "norm": True},
    {"indices": [1, 2], "output_fmt": "NLC", "norm": True},
    {"indices": [0, 2], "return_prefix_tokens": True},
    {"indices": [1], "stop_early": True},
    {"indices": [1], "stop_early": True, "norm": True, "return_prefix_tokens": True, "output_fmt": "NLC"},
    {"indices": 3, "intermediates_only": True},
]


@pytest.mark.parametrize("global_pool", ["avg", "token"])
@pytest.mark.parametrize("kwargs", CASES, ids=[str(c) for c in CASES])
def test_matches_timm_forward_intermediates(global_pool, kwargs):
    theirs, ours = _timm_and_ours(global_pool)
    pixels = random_pixels()
    with torch.no_grad():
        expected = theirs.forward_intermediates(pixels, **kwargs)
        actual = ours.beit.forward_intermediates(pixels, **kwargs)
    _assert_same(actual, expected)


def test_agrees_with_output_hidden_states():
    model = randomize_(hf_beit.BeitModel(tiny_config(use_relative_position_bias=True, use_mean_pooling=False))).eval()
    pixels = random_pixels()
    with torch.no_grad():
        out = model(pixels, output_hidden_states=True)
        final, taken = model.forward_intermediates(pixels, indices=[0, 3], output_fmt="NLC", return_prefix_tokens=True)
        maps = model.forward_intermediates(pixels, indices=[2], intermediates_only=True)
    torch.testing.assert_close(final, out.last_hidden_state)
    for (patches, cls), hidden in zip(taken, (out.hidden_states[1], out.hidden_states[4])):
        torch.testing.assert_close(patches, hidden[:, 1:])
        torch.testing.assert_close(cls, hidden[:, :1])
    assert maps[0].shape == (2, 32, 4, 4)
    torch.testing.assert_close(maps[0], out.hidden_states[3][:, 1:].reshape(2, 4, 4, 32).permute(0, 3, 1, 2))


def test_stop_early_runs_no_later_block():
    model = randomize_(hf_beit.BeitModel(tiny_config(use_relative_position_bias=True, use_mean_pooling=False))).eval()
    calls = []
    for block in model.encoder.layer:
        block.register_forward_hook(lambda module, *_: calls.append(module.layer_index))
    pixels = random_pixels()
    with torch.no_grad():
        final, _ = model.forward_intermediates(pixels, indices=[1], stop_early=True)
        assert calls == [0, 1]
        calls.clear()
        model.forward_intermediates(pixels, indices=[1])
        assert calls == [0, 1, 2, 3]
        hidden = model(pixels, output_hidden_states=True).hidden_states
    torch.testing.assert_close(final, model.layernorm(hidden[2]))  # the final tokens are those of the last block run


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"indices": 0}, r"last 0 blocks; the model has 1\.\.4"),
        ({"indices": 5}, r"last 5 blocks"),
        ({"indices": [4]}, r"0-based block indices in 0\.\.3 \(or -4\.\.-1 from the end\)"),
        ({"indices": []}, r"0-based block indices"),
        ({"output_fmt": "NHWC"}, r"output_fmt must be 'NCHW' or 'NLC'"),
    ],
)
def test_invalid_arguments_are_explained(kwargs, message):
    model = hf_beit.BeitModel(tiny_config())
    with pytest.raises(ValueError, match=message):
        model.forward_intermediates(random_pixels(), **kwargs)


def test_backbone_taps_the_blocks_timm_features_only_takes(tmp_path):
    """timm's out_indices are 0-based blocks too: the same numbers give the same feature maps."""
    theirs, ours = _timm_and_ours("avg")
    ours.save_pretrained(tmp_path)
    backbone = hf_beit.BeitBackbone.from_pretrained(tmp_path, out_indices=[1, 3]).eval()
    features_only = timm_features.FeatureGetterNet(copy.deepcopy(theirs), out_indices=(1, 3)).eval()
    assert backbone.channels == features_only.feature_info.channels() == [TINY["hidden_size"]] * 2
    pixels = random_pixels()
    with torch.no_grad():
        _assert_same(list(backbone(pixels).feature_maps), features_only(pixels))
