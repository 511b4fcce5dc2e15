"""Segmentation pictures, checked by opening the PNGs: overlay legend (present classes only, in the palette colours,
each with its text), the palette ("P") mask and the `hf-beit segment` options that write them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_inference_utils import random_image, save_repo, tiny_processor, tiny_segmenter, write_images

from hf_beit.cli import main
from hf_beit.inference.segment import overlay_image, palette, palette_mask_image, segment_image
from hf_beit.inference.segment_legend import with_legend


def _swatches(panel: np.ndarray) -> list[tuple[tuple[int, ...], int, int]]:
    """``(colour, first row, last row)`` of each run of saturated pixels down the panel (text is black/grey)."""
    saturated = (panel.max(-1).astype(int) - panel.min(-1)) > 40
    runs: list[tuple[tuple[int, ...], int, int]] = []
    for column in range(panel.shape[1]):
        rows = np.flatnonzero(saturated[:, column])
        if len(rows):
            break
    for row in rows:
        colour = tuple(int(v) for v in panel[row, column])
        if runs and runs[-1][0] == colour and runs[-1][2] == row - 1:
            runs[-1] = (colour, runs[-1][1], row)
        else:
            runs.append((colour, row, row))
    return runs


def _class_map() -> np.ndarray:
    """40x30 map of 10 possible classes with three present: 3 (60%), 0 (30%), 7 (10%)."""
    ids = np.full((30, 40), 3)
    ids[:, :12] = 0
    ids[:, 12:16] = 7
    return ids


LABELS = ["wall", "b", "c", "sky", "e", "f", "g", "person riding a horse", "i", "j"]


def test_legend_lists_exactly_the_present_classes_in_their_colours():
    ids = _class_map()
    overlay = overlay_image(random_image(40, 30, seed=1), ids, 10)
    figure = np.asarray(with_legend(overlay, ids, LABELS, palette(10)))
    assert np.array_equal(figure[:30, :40], np.asarray(overlay))  # the overlay itself is untouched
    panel = figure[:, 40:]
    swatches = _swatches(panel)
    expected = [tuple(int(v) for v in palette(10)[c]) for c in (3, 0, 7)]  # by share of pixels, largest first
    assert [colour for colour, _, _ in swatches] == expected
    absent = [tuple(palette(10)[c]) for c in set(range(10)) - {0, 3, 7}]
    colours = {tuple(p) for p in panel.reshape(-1, 3)}
    assert not colours & set(absent)
    # each swatch has its name beside it: dark text to the right, longest for "person riding a horse"
    text_ends = []
    for _, top, bottom in swatches:
        band = panel[top:bottom + 1].min(-1) < 100
        dark_columns = np.flatnonzero(band.any(0))
        assert len(dark_columns), "no text beside a swatch"
        text_ends.append(dark_columns.max())
    assert text_ends[2] > text_ends[0] and text_ends[2] > text_ends[1]
    assert (panel[swatches[-1][2] + 16:] == 255).all()  # nothing listed after the last present class


def test_legend_panel_grows_taller_than_a_short_image():
    ids = np.arange(12).reshape(3, 4)
    figure = with_legend(overlay_image(random_image(4, 3), ids, 12), ids, [f"c{i}" for i in range(12)], palette(12))
    swatches = _swatches(np.asarray(figure)[:, 4:])
    assert [colour for colour, _, _ in swatches] == [tuple(int(v) for v in c) for c in palette(12)]
    assert figure.height > swatches[-1][2] > 3


def test_palette_mask_keeps_the_ids_and_carries_the_overlay_colours(tmp_path):
    ids = _class_map()
    palette_mask_image(ids, 10).save(tmp_path / "m.png")
    reopened = Image.open(tmp_path / "m.png")
    assert reopened.mode == "P"
    assert np.array_equal(np.asarray(reopened), ids)
    assert np.array_equal(np.asarray(reopened.getpalette()[:30]).reshape(10, 3), palette(10))
    assert np.array_equal(np.asarray(reopened.convert("RGB")), palette(10)[ids])  # viewers see the class colours
    with pytest.raises(ValueError, match="at most 256 classes"):
        palette_mask_image(ids, 300)


def test_segment_cli_writes_legends_and_palette_masks(tmp_path, capsys):
    model = tiny_segmenter(num_labels=5)
    model.config.id2label = {i: f"class-{i}" for i in range(5)}
    repo = save_repo(model, tmp_path / "model")
    [image] = write_images(tmp_path / "images", 1, size=(45, 35))
    options = ["--crop", "32", "--stride", "16", "--no-resize", "--quiet"]
    assert main(["segment", str(repo), str(image), "--output", str(tmp_path / "a"), "--palette-mask", *options]) == 0
    expected = segment_image(model, tiny_processor(), Image.open(image), crop_size=32, stride=16,
                             resize_scale=None).numpy()
    mask = Image.open(tmp_path / "a" / "img0_mask.png")
    assert mask.mode == "P" and np.array_equal(np.asarray(mask), expected)
    assert np.array_equal(np.asarray(mask.getpalette()[:15]).reshape(5, 3), palette(5))
    overlay = np.asarray(Image.open(tmp_path / "a" / "img0_overlay.png")).astype(int)
    assert overlay.shape[1] > 45  # the legend panel is to the right
    blend = (np.asarray(Image.open(image)).astype(int) + palette(5)[expected]) / 2
    assert np.abs(overlay[:35, :45] - blend).max() <= 1
    ids, counts = np.unique(expected, return_counts=True)
    by_share = ids[np.argsort(-counts, kind="stable")]
    assert len(by_share) > 1
    swatches = _swatches(overlay[:, 45:].astype(np.uint8))
    assert [colour for colour, _, _ in swatches] == [tuple(int(v) for v in palette(5)[c]) for c in by_share]

    assert main(["segment", str(repo), str(image), "--output", str(tmp_path / "b"), "--no-legend", *options]) == 0
    plain = Image.open(tmp_path / "b" / "img0_overlay.png")
    assert plain.size == (45, 35) and np.array_equal(np.asarray(plain), overlay[:35, :45])
    assert Image.open(tmp_path / "b" / "img0_mask.png").mode == "L"


def test_palette_mask_of_too_many_classes_is_a_one_line_error(tmp_path, capsys):
    repo = save_repo(tiny_segmenter(num_labels=300), tmp_path / "model")
    [image] = write_images(tmp_path / "images", 1)
    assert main(["segment", str(repo), str(image), "--output", str(tmp_path / "out"), "--palette-mask",
                 "--quiet"]) == 2
    error = capsys.readouterr().err
    last = error.strip().splitlines()[-1]  # (above it: transformers' weight-loading bar)
    assert last.startswith("hf-beit segment: error: ") and "at most 256 classes; this model has 300" in last
    assert "Traceback" not in error
    assert not (tmp_path / "out").exists()
