"""Issue 13, batch outputs: nothing overwritten or lost, and a bad image is named instead of ending the run."""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from test_inference_utils import save_repo, tiny_classifier, tiny_segmenter, write_images

import hf_beit
from hf_beit.cli import main
from hf_beit.inference.class_map import upsampled_class_ids


def _segment(repo, inputs, out) -> int:
    return main(["segment", str(repo), *map(str, inputs), "--output", str(out), "--crop", "32", "--stride", "16",
                 "--quiet"])


def test_segment_gives_every_input_its_own_outputs(tmp_path, capsys):
    repo = save_repo(tiny_segmenter(), tmp_path / "model")
    inputs = [write_images(tmp_path / folder, 1, prefix=prefix)[0]
              for folder, prefix in (("a", "x"), ("b", "x"), ("c", "x0-"))]
    inputs[2] = inputs[2].rename(inputs[2].with_name("x0-2.png"))  # a real file named like x0's second output
    assert _segment(repo, inputs, tmp_path / "masks") == 0
    masks = sorted(p.name for p in (tmp_path / "masks").glob("*_mask.png"))
    assert masks == ["x0-2_mask.png", "x0-3_mask.png", "x0_mask.png"]  # three inputs, three masks: none replaced
    assert "Wrote 3 masks" in capsys.readouterr().err


def test_segment_names_a_bad_image_and_writes_the_others(tmp_path, capsys):
    repo = save_repo(tiny_segmenter(), tmp_path / "model")
    good = write_images(tmp_path / "in", 1)[0]
    thin = tmp_path / "in" / "thin.png"
    Image.new("RGB", (1, 2000)).save(thin)
    broken = tmp_path / "in" / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    assert _segment(repo, [good, thin, broken], tmp_path / "masks") == 1
    error = capsys.readouterr().err
    assert f"Cannot segment image {str(thin)!r}: The image is 1x2000 pixels" in error
    assert "narrower than one 8-pixel patch" in error and f"Cannot segment image {str(broken)!r}" in error
    assert "Wrote 1 masks" in error and "2 of 3 images failed" in error
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["img0_mask.png", "img0_overlay.png"]


def test_banded_class_map_equals_the_whole_upsampling():
    logits = torch.randn(1, 7, 13, 17, generator=torch.Generator().manual_seed(0))
    whole = F.interpolate(logits, size=(301, 157), mode="bilinear", align_corners=False)[0].argmax(0)
    banded = upsampled_class_ids(logits, 301, 157, max_bytes=7 * 157 * 4 * 10)  # bands of a few rows
    assert (banded != whole).float().mean() < 1e-3  # equal up to float rounding of near ties
    assert torch.equal(upsampled_class_ids(logits, 301, 157), whole)


def test_predict_never_writes_over_an_input_or_into_a_folder(tmp_path, capsys):
    repo = save_repo(tiny_classifier(), tmp_path / "model")
    image = write_images(tmp_path / "in", 1)[0]
    original = image.read_bytes()
    assert main(["predict", str(repo), str(image), "--output", str(image), "--quiet"]) == 2
    assert "is one of the input images; it would be overwritten" in capsys.readouterr().err
    assert image.read_bytes() == original
    assert main(["predict", str(repo), str(image), "--output", str(tmp_path / "in"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "is a folder; pass a file name" in error and "Traceback" not in error
    assert main(["predict", str(repo), str(image), "--output", str(tmp_path / "p.csv"), "--format", "csv"]) == 0
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "image,rank,label,score,error"


def test_predict_reports_per_image_errors_in_json(tmp_path):
    model = tiny_classifier()
    repo = save_repo(model, tmp_path / "model")
    good = write_images(tmp_path / "in", 1)[0]
    thin = tmp_path / "in" / "thin.png"
    Image.new("L", (1, 5000)).save(thin)
    out = tmp_path / "out.json"
    processor = hf_beit.BeitImageProcessor(size={"shortest_edge": 32}, do_center_crop=True,
                                           crop_size={"height": 32, "width": 32})  # thin: 32 x 160000 after resize
    processor.save_pretrained(repo)
    assert main(["predict", str(repo), str(good), str(thin), "--output", str(out), "--quiet"]) == 1
    rows = {row["image"]: row for row in json.loads(out.read_text())}
    assert "preprocessing would resize it to 32x160000" in rows[str(thin)]["error"]
    assert [p["label"] for p in rows[str(good)]["predictions"]] and np.isclose(
        sum(p["score"] for p in rows[str(good)]["predictions"]), 1.0)
