"""Feature taps in the config: out_indices are 0-based blocks, out_features stock's stage names of the same tensors;
config.json stays readable by stock ``transformers.BeitConfig`` in both directions."""

from __future__ import annotations

import json

import pytest
import transformers
from conftest import TINY, tiny_config

import hf_beit

DEPTH = TINY["num_hidden_layers"]  # 4 blocks: stock stage_names are stem, stage1..stage4


def _saved(tmp_path, config) -> dict:
    config.save_pretrained(tmp_path)
    return json.loads((tmp_path / "config.json").read_text())


@pytest.mark.parametrize(
    "taps, blocks, names, file_indices, file_names",
    [
        (
            {"out_indices": [0, 2, 3]},
            [0, 2, 3],
            ["stage1", "stage3", "stage4"],
            [0, 2, 3],
            ["stem", "stage2", "stage3"],
        ),
        ({"out_features": ["stage2", "stage4"]}, [1, 3], ["stage2", "stage4"], [1, 3], ["stage1", "stage3"]),
        ({"out_indices": [-3, -1]}, [1, 3], ["stage2", "stage4"], [1, 3], ["stage1", "stage3"]),
        # the last block alone (also the default) is written as stock's default: the same tensor for both readers
        ({}, [3], ["stage4"], [4], ["stage4"]),
        ({"out_indices": [-1]}, [3], ["stage4"], [4], ["stage4"]),
    ],
)
def test_saved_taps_load_in_stock_and_back(tmp_path, taps, blocks, names, file_indices, file_names):
    ours = tiny_config(**taps)
    assert ours.out_indices == blocks and ours.out_features == names
    saved = _saved(tmp_path, ours)
    assert saved["out_indices"] == file_indices and saved["out_features"] == file_names
    stock = transformers.BeitConfig.from_pretrained(tmp_path)  # stock validates the pair under its stage names
    assert stock.out_indices == file_indices and stock.out_features == file_names
    back = hf_beit.BeitConfig.from_pretrained(tmp_path)
    assert back.out_indices == blocks and back.out_features == names and back.to_dict() == ours.to_dict()


@pytest.mark.parametrize(
    "stock_taps, blocks",
    [
        ({}, [DEPTH - 1]),  # stock's default out_indices [num_hidden_layers] = the last block's output in both
        ({"out_indices": [0, 1, 2, 3]}, [0, 1, 2, 3]),  # ADE20k-style: the numbers are unilm's blocks
        ({"out_features": ["stage2", "stage4"]}, [2, 3]),  # stock writes out_indices [2, 4]; 4 = the last block
        ({"out_indices": [-2, -1]}, [2, 3]),
    ],
)
def test_configs_written_by_stock_are_read_as_blocks(tmp_path, stock_taps, blocks):
    stock = transformers.BeitConfig(**{**TINY, **stock_taps})
    stock.save_pretrained(tmp_path)
    ours = hf_beit.BeitConfig.from_pretrained(tmp_path)
    assert ours.out_indices == blocks and ours.out_features == [f"stage{b + 1}" for b in blocks]
    assert ours.stage_names == stock.stage_names == ["stem", "stage1", "stage2", "stage3", "stage4"]
    # and what we write back is still a valid stock config
    ours.save_pretrained(tmp_path / "again")
    transformers.BeitConfig.from_pretrained(tmp_path / "again")


def test_hub_ade20k_config_reads_unilm_blocks(tmp_path):
    stock = transformers.BeitConfig(num_hidden_layers=12, out_indices=[3, 5, 7, 11], use_relative_position_bias=True)
    assert stock.out_features == ["stage3", "stage5", "stage7", "stage11"]  # what the Hub's ADE20k configs hold
    stock.save_pretrained(tmp_path)
    ours = hf_beit.BeitConfig.from_pretrained(tmp_path)
    assert ours.out_indices == [3, 5, 7, 11] and ours.out_features == ["stage4", "stage6", "stage8", "stage12"]
    assert _saved(tmp_path / "ours", ours)["out_indices"] == [3, 5, 7, 11]


def test_setters_and_load_time_overrides(tmp_path):
    config = tiny_config()
    config.out_features = ["stage1", "stage3"]
    assert config.out_indices == [0, 2]
    config.out_indices = [-1]
    assert config.out_features == ["stage4"]
    # stock's [1, 2, 3, 4] would name block 3 twice in our reading; load-time kwargs replace the saved taps
    transformers.BeitConfig(**TINY, out_indices=[1, 2, 3, 4]).save_pretrained(tmp_path)
    with pytest.raises(
        ValueError, match=r"blocks \[1, 2, 3, 3\].*pass out_indices= or out_features= to from_pretrained"
    ):
        hf_beit.BeitConfig.from_pretrained(tmp_path)
    by_name = hf_beit.BeitConfig.from_pretrained(tmp_path, out_features=["stage1", "stage2", "stage3", "stage4"])
    assert by_name.out_indices == [0, 1, 2, 3]
    by_index, unused = hf_beit.BeitConfig.from_pretrained(tmp_path, out_indices=[0, -1], return_unused_kwargs=True)
    assert by_index.out_indices == [0, 3] and unused == {}


@pytest.mark.parametrize(
    "taps, message",
    [
        ({"out_indices": [5]}, r"5 is out of range.*0-based block index below 4, or -4\.\.-1 from the end"),
        ({"out_indices": [-5]}, r"-5 is out of range"),
        ({"out_indices": [2, 1]}, r"blocks \[2, 1\], which are not strictly increasing"),
        ({"out_indices": [3, 4]}, r"blocks \[3, 3\].*4 = num_hidden_layers, stock transformers' default"),
        ({"out_features": ["stem"]}, r"'stem' is the embedding output, not the output of a block"),
        ({"out_features": ["stage5"]}, r"'stage5' is not a stage name.*stage1\.\.stage4"),
        ({"out_features": ["stage4", "stage2"]}, r"\['stage4', 'stage2'\]: they name the blocks \[3, 1\]"),
        (
            {"out_indices": [1], "out_features": ["stage3"]},
            r"out_features do not name the blocks \[1\] \(\[.stage2.\]\)",
        ),
    ],
)
def test_invalid_taps_are_explained(taps, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**taps)


def test_failed_assignment_keeps_the_taps():
    config = tiny_config(out_indices=[1, 2])
    with pytest.raises(ValueError, match="out of range"):
        config.out_indices = [7]
    assert config.out_indices == [1, 2] and config.out_features == ["stage2", "stage3"]


def test_segmentation_presets_keep_unilm_taps(tmp_path):
    large = hf_beit.BeitConfig.from_preset("beit-large-patch16-640")
    assert large.out_indices == [7, 11, 15, 23] and large.out_features == ["stage8", "stage12", "stage16", "stage24"]
    assert _saved(tmp_path, large)["out_features"] == ["stage7", "stage11", "stage15", "stage23"]
