"""`hf-beit predict --figures` and `--skip-errors`: figures checked by opening the PNGs (the model's view at the left,
bars as long as the probabilities at the right), the JSON report unchanged, unreadable images left out on request."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from test_inference_utils import LABELS, random_image, save_repo, tiny_classifier, tiny_processor, write_images

from hf_beit.cli import main
from hf_beit.inference.predict_figures import prediction_figure
from hf_beit.pictures import PALETTE


def _bars(chart: np.ndarray) -> list[int]:
    """Length in pixels of each horizontal run of bar colour, top to bottom."""
    rows = np.flatnonzero((chart == PALETTE[0]).all(-1).any(1))
    bands = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1) if len(rows) else []
    lengths = []
    for band in bands:
        columns = np.flatnonzero((chart[band] == PALETTE[0]).all(-1).any(0))
        lengths.append(int(columns.max() - columns.min() + 1))
    return lengths


def _model_view_reference(image: Image.Image) -> np.ndarray:
    """What the 32x32 model sees, from the processor's pixel values with its mean/std 0.5 and 1/255 undone by hand."""
    values = tiny_processor()(images=image, return_tensors="np")["pixel_values"][0]
    return np.clip(np.round((values * 0.5 + 0.5) * 255), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def test_figure_shows_the_model_view_and_bars_as_long_as_the_scores():
    image = random_image(40, 30, seed=4)
    pixel_values = tiny_processor()(images=image, return_tensors="pt")["pixel_values"][0]
    predictions = [{"label": "cat", "score": 0.6}, {"label": "dog", "score": 0.3}, {"label": "bird", "score": 0.1}]
    figure = np.asarray(prediction_figure(pixel_values, tiny_processor(), predictions, "x.png"))
    view = _model_view_reference(image).repeat(5, axis=0).repeat(5, axis=1)  # 32 px enlarged 5x to reach 160
    assert np.abs(figure[:160, :160].astype(int) - view).max() <= 1
    lengths = _bars(figure[:, 168:])
    assert len(lengths) == 3 and lengths[0] > lengths[1] > lengths[2] > 0
    assert (
        lengths[0] / lengths[1] == pytest.approx(2, abs=0.05) and lengths[0] / lengths[2] == pytest.approx(6, rel=0.1)
    )
    # the names are written at the left of the chart, in black, on each bar's row
    assert (figure[:, 168:168 + 20].min(-1) < 80).sum() > 30


def test_predict_cli_figures_one_png_per_image_and_the_same_json(tmp_path, capsys):
    repo = save_repo(tiny_classifier(), tmp_path / "model")
    images = write_images(tmp_path / "in", 3)
    broken = tmp_path / "in" / "broken.png"
    broken.write_bytes(b"not a png")
    args = ["predict", str(repo), *map(str, images), str(broken), "--top-k", "3", "--quiet"]
    assert main(args) == 1
    plain = capsys.readouterr().out
    assert main([*args, "--figures", str(tmp_path / "figures")]) == 1
    assert capsys.readouterr().out == plain  # the report is the same with figures
    results = json.loads(plain)
    written = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert written == ["img0_predictions.png", "img1_predictions.png", "img2_predictions.png"]  # none for broken
    for path, result in zip(images, results):
        figure = np.asarray(Image.open(tmp_path / "figures" / f"{path.stem}_predictions.png").convert("RGB"))
        assert figure.shape[0] >= 160 and figure.shape[1] > 168 + 260
        view = _model_view_reference(Image.open(path).convert("RGB")).repeat(5, axis=0).repeat(5, axis=1)
        assert np.abs(figure[:160, :160].astype(int) - view).max() <= 1
        scores = [p["score"] for p in result["predictions"]]
        assert sorted(p["label"] for p in result["predictions"]) == sorted(LABELS)
        lengths = _bars(figure[:, 168:])
        assert len(lengths) == 3 and lengths == sorted(lengths, reverse=True)
        assert np.allclose(np.array(lengths) / lengths[0], np.array(scores) / scores[0], atol=0.03)
    # the folder is written atomically: an existing non-empty one is refused before any work, unless --overwrite
    assert main([*args, "--figures", str(tmp_path / "figures")]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["predict", str(repo), str(images[0]), "--figures", str(tmp_path / "figures"), "--overwrite",
                 "--quiet"]) == 0
    assert [p.name for p in (tmp_path / "figures").iterdir()] == ["img0_predictions.png"]


def test_skip_errors_leaves_bad_files_out_and_exits_0(tmp_path, capsys):
    repo = save_repo(tiny_classifier(), tmp_path / "model")
    good = write_images(tmp_path / "in", 2)
    broken = tmp_path / "in" / "broken.png"
    broken.write_bytes(b"not a png")
    capsys.readouterr()
    out = tmp_path / "o.json"
    inputs = [str(good[0]), str(broken), str(good[1])]
    assert main(["predict", str(repo), *inputs, "--output", str(out), "--skip-errors", "--quiet"]) == 0
    assert [r["image"] for r in json.loads(out.read_text())] == [str(good[0]), str(good[1])]
    assert all("predictions" in r for r in json.loads(out.read_text()))
    error = capsys.readouterr().err
    assert f"Cannot read image {str(broken)!r}" in error
    assert "1 of 3 images failed (listed above); they were left out of the results (--skip-errors)." in error
    # without the flag: the entry with its error, exit code 1
    assert main(["predict", str(repo), *inputs, "--output", str(out), "--quiet"]) == 1
    assert [sorted(r) for r in json.loads(out.read_text())] == [["image", "predictions"], ["error", "image"],
                                                                 ["image", "predictions"]]
    # nothing readable at all is an error even with the flag, and no report is written
    capsys.readouterr()
    assert main(["predict", str(repo), str(broken), "--output", str(tmp_path / "none.json"), "--skip-errors"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("hf-beit predict: error: None of the 1 images could be read")
    assert not (tmp_path / "none.json").exists()
    # without the flag, nothing readable: each gets its error entry, exit code 1, and the summary says none worked
    assert main(["predict", str(repo), str(broken), "--output", str(out), "--quiet"]) == 1
    assert [sorted(r) for r in json.loads(out.read_text())] == [["error", "image"]]
    assert "none of the 1 images could be processed (listed above)." in capsys.readouterr().err
