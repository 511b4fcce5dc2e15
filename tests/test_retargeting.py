"""One re-targeting: converting a MIM checkpoint with ``--task`` gives the model ``--init-from`` builds from the
converted MIM repo (same config, same weights), at every depth; the converter refuses to guess what the weights
cannot tell (the number of heads without a relative table)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from test_conversion_reference import classification_logits, make_backbone, make_mim_checkpoint

import hf_beit
from hf_beit.conversion import ConversionError, convert_checkpoint
from hf_beit.conversion.cli import main as convert_main
from hf_beit.training.init_from import build_model, finetune_config

LABELS = {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
# Keys that record where and by which version a config was written, not what the model is.
_PROVENANCE = ("_name_or_path", "transformers_version")


def _convert(checkpoint, output, **kwargs):
    return convert_checkpoint(checkpoint, output, progress=False, log=lambda _: None, **kwargs)


def _model_config(config) -> dict:
    values = config.to_dict()
    return {key: value for key, value in values.items() if key not in _PROVENANCE}


@pytest.mark.parametrize("task", ["classification", "segmentation"])
@pytest.mark.parametrize("depth", [4, 6, 8, 12, 24])
def test_convert_with_task_equals_init_from_the_converted_mim_repo(tmp_path, depth, task):
    torch.manual_seed(depth)
    checkpoint = tmp_path / "mim.pth"
    torch.save({"model": make_mim_checkpoint(depth=depth, dim=16, heads=2)}, checkpoint)

    direct = _convert(checkpoint, tmp_path / "direct", task=task, num_labels=len(LABELS))
    _convert(checkpoint, tmp_path / "mim")
    config = finetune_config(tmp_path / "mim", task, LABELS, drop_path_rate=direct.config.drop_path_rate)
    model = build_model(task, config, tmp_path / "mim", head_init_scale=1.0)

    assert _model_config(config) == _model_config(hf_beit.BeitConfig.from_pretrained(tmp_path / "direct"))
    written = load_file(tmp_path / "direct" / "model.safetensors")
    built = model.state_dict()
    assert set(built) - set(written) == set(direct.new_head_keys)  # exactly the new head is missing from the repo
    for key, tensor in written.items():
        torch.testing.assert_close(built[key], tensor, atol=0, rtol=0, msg=key)
    if task == "segmentation":
        expected_taps = {4: [0, 1, 2, 3], 6: [1, 2, 3, 5], 8: [2, 3, 4, 7], 12: [3, 5, 7, 11], 24: [7, 11, 15, 23]}
        assert config.out_indices == expected_taps[depth]


def _headless_classifier(dim: int = 32, heads: int = 4) -> dict:
    """A unilm classification checkpoint with absolute positions and no relative tables (heads unreadable)."""
    torch.manual_seed(0)
    state = make_backbone(dim=dim, heads=heads, per_layer=False, abs_pos=True, layer_scale=False)
    return state | {
        "fc_norm.weight": 1 + 0.1 * torch.randn(dim),
        "fc_norm.bias": 0.1 * torch.randn(dim),
        "head.weight": 0.1 * torch.randn(5, dim),
        "head.bias": 0.1 * torch.randn(5),
    }


def test_head_count_is_never_guessed(tmp_path, capsys):
    checkpoint = tmp_path / "abs.pth"
    torch.save({"model": _headless_classifier()}, checkpoint)
    with pytest.raises(ConversionError, match="--num-heads"):
        _convert(checkpoint, tmp_path / "guessed")
    assert not (tmp_path / "guessed").exists()
    assert convert_main(["--checkpoint", str(checkpoint), "--output", str(tmp_path / "cli")]) == 2
    assert "pass --num-heads" in capsys.readouterr().err


def test_with_num_heads_it_reproduces_the_original(tmp_path):
    state = _headless_classifier()
    checkpoint = tmp_path / "abs.pth"
    torch.save({"model": state}, checkpoint)
    result = _convert(checkpoint, tmp_path / "out", num_attention_heads=4)
    assert result.config.num_attention_heads == 4
    model = hf_beit.BeitForImageClassification.from_pretrained(tmp_path / "out").eval()
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = model(pixel_values=pixels).logits
    expected = classification_logits(state, pixels, heads=4)
    assert (logits - expected).abs().max() <= 1e-4
    with pytest.raises(ConversionError, match="contradicts"):
        torch.save({"model": make_backbone()}, tmp_path / "tables.pth")
        _convert(tmp_path / "tables.pth", tmp_path / "wrong", num_attention_heads=2, task="classification")


def test_shared_table_copies_are_independent(tmp_path):
    """Each layer gets its own copy of the shared pre-training table (fine-tuning then changes them apart)."""
    from conftest import randomize_, tiny_config

    from hf_beit.retargeting import LAYER_TABLE_KEY, SHARED_TABLE_KEY, retarget_config, retarget_state_dict

    mim = randomize_(hf_beit.BeitForMaskedImageModeling(
        tiny_config(use_shared_relative_position_bias=True, use_mask_token=True,
                    architectures=["BeitForMaskedImageModeling"])
    ))  # fmt: skip
    target = retarget_config(mim.config, "classification", id2label=LABELS)
    weights = retarget_state_dict(mim.state_dict(), mim.config, target).state_dict
    assert SHARED_TABLE_KEY not in weights
    tables = [weights[LAYER_TABLE_KEY.format(layer)] for layer in range(target.num_hidden_layers)]
    assert all(torch.equal(table, mim.state_dict()[SHARED_TABLE_KEY]) for table in tables)
    tables[0].add_(1)
    assert not torch.equal(tables[0], tables[1])


def test_an_image_size_that_is_no_whole_number_of_patches_is_refused():
    from conftest import tiny_config

    from hf_beit.retargeting import RetargetingError, retarget_config

    config = tiny_config(architectures=["BeitForImageClassification"])
    patch = config.patch_size_2d[0]
    assert retarget_config(config, "classification", image_size=3 * patch).image_size == 3 * patch
    for size in (3 * patch + 1, 0, -patch):
        with pytest.raises(RetargetingError, match=f"An image size of {size} is not a whole number of"):
            retarget_config(config, "classification", image_size=size)
