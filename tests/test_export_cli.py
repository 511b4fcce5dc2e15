"""``hf-beit export``: files written by the CLI run like the eager model; user errors exit 2 with a message."""

from __future__ import annotations

import re

import onnx
import pytest
import torch
from conftest import random_pixels, randomize_, tiny_config

import hf_beit
from hf_beit.cli import main
from hf_beit.export import OnnxRunner

RELATIVE = {"use_relative_position_bias": True, "num_hidden_layers": 2}


@pytest.fixture(scope="module")
def classifier_repo(tmp_path_factory):
    path = tmp_path_factory.mktemp("repo") / "classifier"
    randomize_(hf_beit.BeitForImageClassification(tiny_config(**RELATIVE))).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def classifier(classifier_repo):
    return hf_beit.BeitForImageClassification.from_pretrained(classifier_repo).eval()


def _reported_differences(text: str) -> list[float]:
    line = next(line for line in text.splitlines() if line.startswith("max |"))
    return [float(value) for value in re.findall(r"\d\.\de[-+]\d+", line)]


def test_onnx_at_a_chosen_size_and_opset(classifier_repo, classifier, tmp_path, capsys):
    output = tmp_path / "out" / "model.onnx"
    assert main(["export", str(classifier_repo), str(output), "--image-size", "40", "48", "--opset", "18"]) == 0
    printed = capsys.readouterr().out
    assert "image-classification, pixel_values (batch, 3, 40, 48) -> logits" in printed
    differences = _reported_differences(printed)
    assert differences and max(differences) <= 1e-4
    assert [entry.version for entry in onnx.load(str(output)).opset_import if entry.domain == ""] == [18]
    pixels = random_pixels(2, size=48)[:, :, :40]
    with torch.no_grad():
        expected = classifier(pixels, interpolate_pos_encoding=True).logits
    assert (torch.from_numpy(OnnxRunner(output)(pixels)["logits"]) - expected).abs().max() <= 1e-4


def test_torch_export_format_and_embeddings_of_a_classification_repo(classifier_repo, classifier, tmp_path, capsys):
    output = tmp_path / "encoder.pt2"
    args = ["export", str(classifier_repo), str(output), "--format", "torch-export", "--task",
            "image-feature-extraction", "--outputs", "pooler_output"]
    assert main(args) == 0
    assert max(_reported_differences(capsys.readouterr().out)) <= 1e-4
    module = torch.export.load(output).module()
    pixels = random_pixels(3)
    with torch.no_grad():
        expected = classifier.beit(pixels).pooler_output
        assert (module(pixel_values=pixels)["pooler_output"] - expected).abs().max() <= 1e-4


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--image-size", "dynamic"], r"relative-position bias tables.*--image-size H \[W\]"),
        (["--task", "depth-estimation"], r"Unknown export task 'depth-estimation'"),
        (["--task", "image-segmentation"], r"needs a BeitForSemanticSegmentation"),
        (["--image-size", "32", "32", "32"], r"--image-size takes HEIGHT \[WIDTH\] or 'dynamic'"),
    ],
)
def test_user_errors_exit_2_with_a_message(classifier_repo, tmp_path, capsys, extra, message):
    output = tmp_path / "model.onnx"
    assert main(["export", str(classifier_repo), str(output), *extra]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not output.exists()


def test_existing_output_needs_overwrite_and_unknown_architectures_need_a_task(tmp_path, capsys):
    repo = tmp_path / "mim"
    hf_beit.BeitForMaskedImageModeling(tiny_config(**RELATIVE)).save_pretrained(repo)
    output = tmp_path / "model.onnx"
    assert main(["export", str(repo), str(output)]) == 2
    assert "pass --task" in capsys.readouterr().err
    output.write_text("keep me")
    assert main(["export", str(repo), str(output), "--task", "image-feature-extraction"]) == 2
    assert "pass --overwrite" in capsys.readouterr().err and output.read_text() == "keep me"
