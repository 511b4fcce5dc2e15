"""Batch classification (`hf_beit.inference.predict`) and `hf-beit predict`."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
from PIL import Image
from test_inference_utils import LABELS, save_repo, tiny_classifier, tiny_processor, write_images

from hf_beit.cli import main
from hf_beit.inference.predict import class_probabilities, format_predictions, predict_images, top_predictions


def _reference_probs(model, paths, multi_label=False):
    """One image at a time, straight through processor and model."""
    rows = []
    with torch.no_grad():
        for path in paths:
            logits = model(**tiny_processor()(images=Image.open(path).convert("RGB"), return_tensors="pt")).logits
            rows.append(logits.sigmoid()[0] if multi_label else logits.softmax(-1)[0])
    return torch.stack(rows)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    return write_images(folder, 5, size=(40, 30)) + write_images(folder, 2, size=(23, 61), prefix="tall")


def test_batched_probabilities_equal_single_image_calls(images):
    model = tiny_classifier()
    batched = class_probabilities(model, tiny_processor(), [Image.open(p).convert("RGB") for p in images])
    torch.testing.assert_close(batched, _reference_probs(model, images), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batched.sum(-1), torch.ones(len(images)))


def test_top_predictions_by_hand():
    probs = torch.tensor([0.1, 0.6, 0.3])
    assert top_predictions(probs, LABELS, top_k=2) == [{"label": "dog", "score": pytest.approx(0.6)},
                                                       {"label": "bird", "score": pytest.approx(0.3)}]
    assert [p["label"] for p in top_predictions(probs, LABELS, threshold=0.25)] == ["dog", "bird"]
    with pytest.raises(ValueError, match="top_k"):
        top_predictions(probs, LABELS, top_k=0)


def test_predict_images_single_and_multi_label(images):
    model = tiny_classifier()
    results = predict_images(model, tiny_processor(), images, batch_size=3, top_k=2, progress=False)
    reference = _reference_probs(model, images)
    assert [r["image"] for r in results] == [str(p) for p in images]
    for result, probs in zip(results, reference):
        best = probs.argsort(descending=True)[:2].tolist()
        assert [p["label"] for p in result["predictions"]] == [LABELS[i] for i in best]
        assert result["predictions"][0]["score"] == pytest.approx(probs[best[0]].item(), abs=1e-5)

    multi = tiny_classifier(multi_label=True, seed=3)
    sigmoid = _reference_probs(multi, images, multi_label=True)
    ordered = sigmoid.flatten().sort().values
    middle = len(ordered) // 2  # halfway between two scores: no score sits on the threshold, up to rounding
    threshold = ((ordered[middle - 1] + ordered[middle]) / 2).item()
    results = predict_images(multi, tiny_processor(), images, batch_size=4, threshold=threshold, progress=False)
    for result, probs in zip(results, sigmoid):
        assert {p["label"] for p in result["predictions"]} == {LABELS[i] for i in range(3) if probs[i] >= threshold}
    assert {len(r["predictions"]) for r in results} != {3}  # the threshold really filters


def test_predict_cli_json_and_csv(images, tmp_path, capsys):
    model = tiny_classifier()
    repo = save_repo(model, tmp_path / "model")
    folder = images[0].parent
    assert main(["predict", str(repo), str(folder / "img*.png"), str(images[-1]), "--top-k", "3",
                 "--batch-size", "2", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    inputs = images[:5] + [images[-1]]
    assert [r["image"] for r in printed] == [str(p) for p in inputs]
    reference = _reference_probs(model, inputs)
    for result, probs in zip(printed, reference):
        scores = {p["label"]: p["score"] for p in result["predictions"]}
        assert scores == pytest.approx(dict(zip(LABELS, probs.tolist())), abs=1e-5)

    out = tmp_path / "reports" / "preds.csv"
    assert main(["predict", str(repo), str(folder), "--format", "csv", "--output", str(out), "--quiet"]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 3 * len(images) and rows[0]["rank"] == "1"
    assert [r["image"] for r in rows[::3]] == [str(p) for p in sorted(images)]
    assert format_predictions(printed, "json") == json.dumps(printed, indent=2) + "\n"


def test_predict_cli_reports_bad_input(tmp_path, capsys):
    repo = save_repo(tiny_classifier(), tmp_path / "model")
    assert main(["predict", str(repo), str(tmp_path / "missing.jpg")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "broken.png").write_bytes(b"nope")
    # an unreadable image is reported by name in its own result (exit code 1); the report is still written
    assert main(["predict", str(repo), str(tmp_path / "broken.png"), "--output", str(tmp_path / "o.json")]) == 1
    assert "Cannot read image" in capsys.readouterr().err
    [result] = json.loads((tmp_path / "o.json").read_text())
    assert result["image"] == str(tmp_path / "broken.png") and "Cannot read image" in result["error"]
    assert main(["predict", str(tmp_path), str(tmp_path / "broken.png")]) == 2
    assert "config.json" in capsys.readouterr().err
