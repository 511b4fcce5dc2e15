"""Initialising fine-tuning models from MIM and classification checkpoints."""

from __future__ import annotations

import logging

import pytest
import torch
import transformers
from conftest import TINY

import hf_beit
from hf_beit.retargeting import segmentation_out_indices
from hf_beit.training.init_from import InitCheckpointError, build_model, finetune_config

TABLE = "beit.encoder.layer.{}.attention.attention.relative_position_bias.relative_position_bias_table"
SHARED = "beit.encoder.relative_position_bias.relative_position_bias_table"
# TINY without labels (tests set their own id2label), with a vocabulary of its own
SMALL = {**{key: value for key, value in TINY.items() if key != "num_labels"}, "vocab_size": 40}
LABELS = {0: "a", 1: "b", 2: "c"}


@torch.no_grad()
def _randomize(model: torch.nn.Module) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(0)
    for tensor in model.parameters():
        tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
    return model


@pytest.fixture
def mim_dir(tmp_path):
    config = hf_beit.BeitConfig(**SMALL, use_shared_relative_position_bias=True, use_mask_token=True)
    model = _randomize(hf_beit.BeitForMaskedImageModeling(config)).eval()
    model.save_pretrained(tmp_path / "mim")
    return tmp_path / "mim", model


def test_mim_checkpoint_table_copied_into_every_layer(mim_dir, caplog):
    path, mim = mim_dir
    config = finetune_config(path, "classification", LABELS, drop_path_rate=0.0)
    assert config.use_relative_position_bias and not config.use_shared_relative_position_bias
    assert not config.use_mask_token and config.num_labels == 3 and config.id2label[2] == "c"
    with caplog.at_level(logging.INFO, logger="hf_beit.training"):
        model = build_model("classification", config, path, head_init_scale=0.001).eval()
    assert "Copied the shared relative position bias into every layer" in caplog.text
    state = model.state_dict()
    shared = mim.state_dict()[SHARED]
    assert shared.abs().sum() > 0
    for layer in range(4):
        assert torch.equal(state[TABLE.format(layer)], shared)
    # the backbone computes exactly what the pre-trained one did
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model.beit(pixels).last_hidden_state
        reference = mim.beit(pixels).last_hidden_state
    torch.testing.assert_close(ours, reference)
    # new head: truncated normal(0.02) scaled by 0.001
    assert model.classifier.weight.shape == (3, 32)
    assert 0 < model.classifier.weight.abs().max() < 1e-4


def test_checkpoint_written_by_stock_transformers(tmp_path):
    config = transformers.BeitConfig(**SMALL, use_shared_relative_position_bias=True, use_mask_token=True)
    stock = _randomize(transformers.BeitForMaskedImageModeling(config))
    stock.save_pretrained(tmp_path / "stock")
    ours_config = finetune_config(tmp_path / "stock", "segmentation", LABELS)
    model = build_model("segmentation", ours_config, tmp_path / "stock")
    assert ours_config.out_indices == [0, 1, 2, 3]
    table = stock.state_dict()["beit.shared_position_bias.relative_position_bias_table"]  # 5.23 in-memory name
    assert torch.equal(model.state_dict()[TABLE.format(3)], table)
    assert torch.equal(model.beit.embeddings.cls_token, stock.beit.embeddings.cls_token)


def test_classification_checkpoint_with_other_labels_replaces_head(tmp_path, caplog):
    config = hf_beit.BeitConfig(**SMALL, use_relative_position_bias=True, id2label=LABELS)
    source = _randomize(hf_beit.BeitForImageClassification(config))
    source.save_pretrained(tmp_path / "clf")
    new_labels = {0: "x", 1: "y", 2: "z", 3: "w", 4: "v"}
    new_config = finetune_config(tmp_path / "clf", "classification", new_labels)
    with caplog.at_level(logging.WARNING, logger="hf_beit.training"):
        model = build_model("classification", new_config, tmp_path / "clf")
    assert "Replacing the classification head: the checkpoint has 3 labels (a, b, c)" in caplog.text
    assert "the new model has 5 (x, y, z, w, v)" in caplog.text
    assert model.classifier.weight.shape == (5, 32)
    assert torch.equal(model.beit.pooler.layernorm.weight, source.beit.pooler.layernorm.weight)

    caplog.clear()
    same_config = finetune_config(tmp_path / "clf", "classification", LABELS)
    with caplog.at_level(logging.WARNING, logger="hf_beit.training"):
        same = build_model("classification", same_config, tmp_path / "clf")
    assert "Replacing" not in caplog.text
    assert torch.equal(same.classifier.weight, source.classifier.weight)

    renamed = {0: "a", 1: "b", 2: "other"}  # same size, different classes: still a new head
    with caplog.at_level(logging.WARNING, logger="hf_beit.training"):
        build_model("classification", finetune_config(tmp_path / "clf", "classification", renamed), tmp_path / "clf")
    assert "Replacing the classification head" in caplog.text


def test_new_image_size_resizes_tables(mim_dir):
    path, _ = mim_dir
    config = finetune_config(path, "classification", LABELS, image_size=48)
    model = build_model("classification", config, path)
    assert model.state_dict()[TABLE.format(0)].shape == ((2 * 6 - 1) ** 2 + 3, 4)
    assert model(torch.randn(1, 3, 48, 48)).logits.shape == (1, 3)


def test_errors_and_out_indices(tmp_path):
    with pytest.raises(InitCheckpointError, match=r"No model\.safetensors"):
        (tmp_path / "empty").mkdir()
        hf_beit.BeitConfig(**SMALL).save_pretrained(tmp_path / "empty")
        build_model("classification", hf_beit.BeitConfig(**SMALL), tmp_path / "empty")
    with pytest.raises(ValueError, match="task"):
        build_model("detection", hf_beit.BeitConfig(**SMALL))
    assert segmentation_out_indices([12], 12) == [3, 5, 7, 11]
    assert segmentation_out_indices(None, 24) == [7, 11, 15, 23]
    assert segmentation_out_indices([0, 2, 4, 5], 6) == [0, 2, 4, 5]
    assert segmentation_out_indices(None, 8) == [2, 3, 4, 7]  # unilm's rule (L/3, L/2, 2L/3, L) - 1
