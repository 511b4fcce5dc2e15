"""Charts are checked for what they show (positions and colours of the drawn data), not only for existing."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from hf_beit.pictures import PALETTE, bar_chart, line_chart
from hf_beit.training.curves import write_curves


def _pixels_of(path, colour) -> np.ndarray:
    picture = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return np.argwhere(np.abs(picture - np.array(colour)).sum(-1) < 30)


def test_a_falling_loss_is_drawn_falling(tmp_path):
    log = tmp_path / "training_log.jsonl"
    records = [{"step": s, "epoch": s / 10, "loss": 2.0 - 0.1 * s, "learning_rate": 1e-3} for s in range(1, 11)]
    records += [
        {"step": 10, "eval_loss": 1.2, "eval_accuracy": 0.7},
        {"step": 20, "eval_loss": 0.9, "eval_accuracy": 0.8},
    ]
    log.write_text("\n".join(json.dumps(r) for r in records) + "\n{torn last line")
    written = write_curves(log, tmp_path)
    assert [p.name for p in written] == ["loss.png", "metrics.png"]
    train_line = _pixels_of(tmp_path / "loss.png", PALETTE[0])
    plot = train_line[train_line[:, 1] < 600]  # leave out the legend swatch on the right
    left_end, right_end = plot[plot[:, 1] == plot[:, 1].min()], plot[plot[:, 1] == plot[:, 1].max()]
    assert left_end[:, 0].mean() < right_end[:, 0].mean()  # high loss at the left (small row), low at the right
    assert len(_pixels_of(tmp_path / "metrics.png", PALETTE[0])) > 0  # eval_accuracy drawn in the first colour


def test_bar_lengths_follow_the_values(tmp_path):
    path = bar_chart(["a", "b", "c"], [0.25, 1.0, 0.5], tmp_path / "bars.png", "IoU")
    bars = _pixels_of(path, PALETTE[0])
    lengths = [np.ptp(bars[(bars[:, 0] >= 28 + 18 * i) & (bars[:, 0] < 28 + 18 * (i + 1)), 1]) for i in range(3)]
    assert lengths[1] > lengths[2] > lengths[0] > 0
    assert abs(lengths[1] / lengths[0] - 4) < 0.3


def test_line_chart_needs_points(tmp_path):
    try:
        line_chart({"loss": []}, tmp_path / "x.png", "empty")
    except ValueError as error:
        assert "at least one point" in str(error)
    else:
        raise AssertionError("an empty chart must be refused")
