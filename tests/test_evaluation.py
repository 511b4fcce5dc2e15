"""``hf-beit evaluate``: metrics equal to scikit-learn's on the model's own predictions, labels matched by name, and
pictures whose content follows the numbers."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import torch
from conftest import randomize_, tiny_config
from PIL import Image
from sklearn.metrics import accuracy_score, confusion_matrix, top_k_accuracy_score

import hf_beit
from hf_beit.cli import main
from hf_beit.evaluation import evaluate_model
from hf_beit.training.datasets import load_digits_dataset

DIGITS = {i: str(i) for i in range(10)}


@pytest.fixture(scope="module")
def digits_repo(tmp_path_factory):
    path = tmp_path_factory.mktemp("digits_repo")
    model = randomize_(hf_beit.BeitForImageClassification(tiny_config(num_labels=10, id2label=DIGITS)), seed=3)
    model.save_pretrained(path)
    hf_beit.BeitImageProcessor(size={"height": 32, "width": 32}, do_center_crop=False).save_pretrained(path)
    return path


def _reference_logits(repo, images) -> np.ndarray:
    model = hf_beit.BeitForImageClassification.from_pretrained(repo).eval()
    processor = hf_beit.BeitImageProcessor.from_pretrained(repo)
    with torch.no_grad():
        return model(**processor([image.convert("RGB") for image in images], return_tensors="pt")).logits.numpy()


def test_classification_metrics_equal_sklearn(digits_repo, tmp_path):
    result = evaluate_model(digits_repo, "digits", output_dir=tmp_path / "out", progress=False)
    test = load_digits_dataset()["test"]
    logits, truth = _reference_logits(digits_repo, test["image"]), np.asarray(test["label"])
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["examples"] == len(test) == 180
    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth, logits.argmax(1)))
    assert metrics["top_5_accuracy"] == pytest.approx(top_k_accuracy_score(truth, logits, k=5, labels=range(10)))
    expected = confusion_matrix(truth, logits.argmax(1), labels=range(10))
    assert metrics["confusion_matrix"] == expected.tolist() and result.metrics == metrics
    picture = np.asarray(Image.open(tmp_path / "out" / "confusion_matrix.png").convert("L")).astype(int)
    assert picture.shape[0] > 10 * 28 and picture.shape[1] > 10 * 28
    # the cells are shaded by count: the most frequent (true, predicted) pair is the darkest cell
    label_width, cell = 8 + 6 * 1, 28
    shades = np.array([[picture[24 + label_width + r * cell + 2, label_width + c * cell + 2] for c in range(10)]
                       for r in range(10)])  # fmt: skip
    assert np.unravel_index(shades.argmin(), shades.shape) == np.unravel_index(expected.argmax(), expected.shape)


def test_dataset_labels_are_matched_by_name(digits_repo, tmp_path):
    """A dataset that numbers the same classes in another order is scored on the model's numbering."""
    test = load_digits_dataset()["test"].select(range(40))
    reversed_names = [str(i) for i in range(9, -1, -1)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=reversed_names)})
    renumbered = datasets.Dataset.from_dict({"image": test["image"], "label": [9 - y for y in test["label"]]}, features)
    datasets.DatasetDict({"test": renumbered}).save_to_disk(tmp_path / "reversed")
    scored = evaluate_model(digits_repo, tmp_path / "reversed", progress=False).metrics
    logits = _reference_logits(digits_repo, test["image"])
    assert scored["accuracy"] == pytest.approx(accuracy_score(test["label"], logits.argmax(1)))


def test_segmentation_iou_equals_a_confusion_matrix_by_hand(tmp_path):
    config = tiny_config(num_labels=3, out_indices=[0, 1, 2, 3], pool_scales=[1, 2], use_relative_position_bias=True)
    model = randomize_(hf_beit.BeitForSemanticSegmentation(config), seed=4).eval()
    model.save_pretrained(tmp_path / "seg")
    processor = hf_beit.BeitImageProcessor(size={"height": 32, "width": 32}, do_center_crop=False)
    processor.save_pretrained(tmp_path / "seg")
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(4)]
    masks = [Image.fromarray(rng.integers(0, 3, (32, 32), dtype=np.uint8)) for _ in range(4)]
    features = datasets.Features({"image": datasets.Image(), "annotation": datasets.Image()})
    datasets.DatasetDict({"validation": datasets.Dataset.from_dict({"image": images, "annotation": masks}, features)}
                         ).save_to_disk(tmp_path / "data")  # fmt: skip
    metrics = evaluate_model(tmp_path / "seg", tmp_path / "data", output_dir=tmp_path / "out", progress=False).metrics
    with torch.no_grad():
        logits = model(**processor(images, return_tensors="pt")).logits
        upsampled = torch.nn.functional.interpolate(logits, size=(32, 32), mode="bilinear", align_corners=False)
    predicted = upsampled.argmax(1).numpy().ravel()
    truth = np.stack([np.asarray(mask) for mask in masks]).ravel()
    table = confusion_matrix(truth, predicted, labels=range(3))
    iou = np.diag(table) / (table.sum(0) + table.sum(1) - np.diag(table))
    assert metrics["mean_iou"] == pytest.approx(np.nanmean(iou))
    assert metrics["pixel_accuracy"] == pytest.approx((predicted == truth).mean())
    assert (tmp_path / "out" / "per_class_iou.png").is_file()


def test_cli_prints_metrics_and_refuses_a_mim_repo(digits_repo, tmp_path, capsys):
    assert main(["evaluate", str(digits_repo), "digits", "--no-progress", "--batch-size", "64"]) == 0
    assert '"accuracy"' in capsys.readouterr().out
    config = tiny_config(use_shared_relative_position_bias=True, use_mask_token=True)
    hf_beit.BeitForMaskedImageModeling(config).save_pretrained(tmp_path / "mim")
    assert main(["evaluate", str(tmp_path / "mim"), "digits"]) == 2
    assert "not a classification or segmentation model" in capsys.readouterr().err
