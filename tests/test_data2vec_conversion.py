"""data2vec-vision repos as transformers writes them convert into BEiT repos with transformers' own outputs.

Reference: transformers' ``Data2VecVision*`` classes on the same saved repo (random weights, every parameter and
BatchNorm statistic randomised). The converted repos load in hf_beit's classes and in stock transformers' Beit
classes; the cards state the upstream CC-BY-NC licence.
"""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from conftest import randomize_
from huggingface_hub import ModelCard

import hf_beit
from hf_beit.configuration_beit import MODEL_SIZES
from hf_beit.conversion import ConversionError, convert_checkpoint

TOL = 1e-4
TINY = {
    "hidden_size": 32, "num_hidden_layers": 6, "num_attention_heads": 4, "intermediate_size": 37, "image_size": 32,
    "patch_size": 8, "layer_norm_eps": 1e-6, "drop_path_rate": 0.0, "use_shared_relative_position_bias": True,
    "out_indices": [2, 3, 4, 5],
}


def _save(tmp_path, cls_name, **overrides):
    """A repo written by transformers' ``save_pretrained`` (model_type data2vec-vision, prefix data2vec_vision.)."""
    config = transformers.Data2VecVisionConfig(**{**TINY, **overrides})
    model = randomize_(getattr(transformers, cls_name)(config).eval(), seed=3)
    folder = tmp_path / cls_name
    model.save_pretrained(folder)
    transformers.BeitImageProcessor(size={"height": 32, "width": 32}, do_center_crop=False).save_pretrained(folder)
    return folder, model


def _convert(source, output, **kwargs):
    return convert_checkpoint(source, output, progress=False, log=lambda message: None, **kwargs)


def _max_diff(a, b):
    return (a - b).abs().max().item()


def test_saved_layout_is_data2vec_prefixed(tmp_path):
    folder, _ = _save(tmp_path, "Data2VecVisionForImageClassification", num_labels=5)
    config = json.loads((folder / "config.json").read_text())
    keys = transformers.modeling_utils.load_state_dict(str(folder / "model.safetensors"))
    assert config["model_type"] == "data2vec-vision" and any(
        k.startswith("data2vec_vision.encoder.layer.0.") for k in keys
    )


def test_classifier_matches_transformers(tmp_path):
    folder, reference = _save(tmp_path, "Data2VecVisionForImageClassification", num_labels=5)
    result = _convert(folder, tmp_path / "out")
    assert result.task == "classification" and result.reference_max_abs_diff <= TOL
    config = json.loads((result.output / "config.json").read_text())
    assert config["model_type"] == "beit" and config["use_shared_relative_position_bias"]
    pixel_values = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = reference(pixel_values).logits
        for cls in (hf_beit.BeitForImageClassification, transformers.BeitForImageClassification):
            model, info = cls.from_pretrained(result.output, output_loading_info=True)
            assert not info["missing_keys"] and not info["unexpected_keys"], cls
            assert _max_diff(model.eval()(pixel_values).logits, expected) <= TOL, cls
    kept = hf_beit.BeitImageProcessor.from_pretrained(result.output)
    assert kept.size == {"height": 32, "width": 32}  # no registry entry: the repo's own processor is kept
    card = ModelCard.load(result.output / "README.md")
    assert card.data.license == "other" and card.data.license_name == "cc-by-nc"


def test_encoder_and_backbone_match_transformers(tmp_path):
    folder, reference = _save(tmp_path, "Data2VecVisionModel", use_mean_pooling=False)
    result = _convert(folder, tmp_path / "out")
    assert result.task == "embeddings" and result.reference_max_abs_diff <= TOL
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = reference(pixel_values, output_hidden_states=True)
        ours = hf_beit.BeitModel.from_pretrained(result.output).eval()(pixel_values)
        assert _max_diff(ours.last_hidden_state, expected.last_hidden_state) <= TOL
        assert expected.pooler_output is None  # transformers' Data2VecVisionModel has no pooler by default
        backbone = hf_beit.BeitBackbone.from_pretrained(result.output, out_indices=[1, 5]).eval()
        maps = backbone(pixel_values).feature_maps
    for block, feature in zip([1, 5], maps):
        tokens = expected.hidden_states[block + 1][:, 1:]
        assert _max_diff(feature, tokens.transpose(1, 2).reshape(2, 32, 4, 4)) <= TOL


def test_segmentation_weights_match_transformers_at_its_taps(tmp_path):
    """transformers taps the outputs of blocks ``i - 2`` for ``out_indices`` i; with those blocks the logits agree."""
    folder, reference = _save(tmp_path, "Data2VecVisionForSemanticSegmentation", num_labels=4, use_auxiliary_head=True)
    result = _convert(folder, tmp_path / "out")
    assert result.task == "segmentation" and any("out_indices" in note for note in result.notes)
    pixel_values = torch.randn(2, 3, 32, 32)
    model = hf_beit.BeitForSemanticSegmentation.from_pretrained(result.output, out_indices=[0, 1, 2, 3]).eval()
    with torch.no_grad():
        assert _max_diff(model(pixel_values).logits, reference(pixel_values).logits) <= TOL


def test_registry_entry_fixes_labels_processor_and_licence(tmp_path, monkeypatch):
    tiny = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}
    monkeypatch.setitem(MODEL_SIZES, "base", tiny)
    folder, _ = _save(
        tmp_path, "Data2VecVisionForImageClassification", num_labels=1000, image_size=224, patch_size=16,
        **tiny,
    )
    result = _convert(folder, tmp_path / "out", model_name="facebook/data2vec-vision-base-ft1k")
    assert result.config.id2label[281] == "tabby, tabby cat" and result.reference_max_abs_diff <= TOL
    processor = json.loads((result.output / "preprocessor_config.json").read_text())
    assert processor["crop_size"] == {"height": 224, "width": 224} and processor["image_mean"] == [0.5, 0.5, 0.5]
    card = ModelCard.load(result.output / "README.md")
    assert card.data.license == "other" and card.data.license_name == "cc-by-nc"
    assert "apache-2.0" in card.text and "Non-commercial" in card.text


def test_refusals(tmp_path):
    folder, _ = _save(tmp_path, "Data2VecVisionModel")
    with pytest.raises(ConversionError, match="original checkpoints only"):
        _convert(folder, tmp_path / "a", task="classification")
    transformers.ViTModel(transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                                 intermediate_size=37, image_size=32, patch_size=8)).save_pretrained(
        tmp_path / "vit"
    )
    with pytest.raises(ConversionError, match="'vit'"):
        _convert(tmp_path / "vit", tmp_path / "b")
    with pytest.raises(ConversionError, match="does not match the registry entry"):
        _convert(folder, tmp_path / "c", model_name="facebook/data2vec-vision-large")


def test_convert_command_takes_a_repo_folder(tmp_path, capsys):
    from hf_beit.cli import main

    folder, _ = _save(tmp_path, "Data2VecVisionForImageClassification", num_labels=3)
    assert main(["convert", "--checkpoint", str(folder), "--output", str(tmp_path / "out")]) == 0
    assert "Wrote" in capsys.readouterr().out
    assert main(["convert", "--checkpoint", str(folder), "--output", str(tmp_path / "x"), "--num-heads", "4"]) == 2
    assert "original checkpoints only" in capsys.readouterr().err
