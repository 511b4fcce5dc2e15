"""bench_engines.py's bookkeeping: which hf_beit path is compared with which contender, calibration views."""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

from _engine_report import Result, target_lines, verdicts
from _measure import Timings
from _photos import calibration_views, photo_views


def _row(name, seconds, agreement, ours=False, precision="int8", batch=8):
    return Result(name, precision, batch, ours, Timings([seconds, seconds]), agreement, 0.0, 0.0)


def test_summary_takes_our_fastest_path_at_the_contenders_agreement():
    rows = [
        _row("peer fast", 1.0, 0.95),
        _row("peer slow", 2.0, 1.0),
        _row("ours fastest but less accurate", 0.5, 0.90, ours=True),
        _row("ours accurate", 0.9, 0.99, ours=True),
    ]
    (verdict,) = [v for v in verdicts(rows) if (v.precision, v.batch) == ("int8", 8)]
    assert verdict.best.name == "peer fast"  # fastest contender by median, whatever its agreement
    assert verdict.ours.name == "ours accurate"
    assert abs(verdict.ratio - 1.0 / 0.9) < 1e-9
    table = "\n".join(target_lines(rows))
    assert "| int8 b8 | >= 1.2x vs peer fast at >= 99% agreement | ours accurate | 1.11x | 99.0% | no |" in table


def test_calibration_views_are_not_evaluation_views():
    evaluation, calibration = photo_views(114), calibration_views(95)
    assert calibration.shape == (95, 3, 224, 224)
    distances = torch.cdist(calibration.flatten(1), evaluation.flatten(1))
    assert distances.min().item() > 1.0


def test_agreement_runs_every_view_in_order_at_the_contenders_batch_size():
    from bench_engines import AGREEMENT_VIEWS, AGREEMENT_VIEWS_QUICK, agreement_logits

    class RecordingContender:
        def __init__(self):
            self.batches = []

        def logits(self, pixels):
            self.batches.append(len(pixels))
            return pixels.flatten(1)[:, :2]

    views = torch.randn(24, 3, 4, 4)
    contender = RecordingContender()
    logits = agreement_logits(contender, views, 8)
    assert contender.batches == [8, 8, 8]
    assert torch.equal(logits, views.flatten(1)[:, :2])
    for count in (AGREEMENT_VIEWS, AGREEMENT_VIEWS_QUICK):  # whole batches of 8 (and 1), all of them available
        assert count % 8 == 0
    assert len(photo_views(AGREEMENT_VIEWS)) == AGREEMENT_VIEWS


def test_quick_mode_measures_agreement_once_per_contender():
    from bench_engines import forward_results

    class Contender:
        name, precision, ours, build_seconds, label = "peer", "int8", False, 0.0, "peer (int8)"

        def __init__(self):
            self.batches = []

        def logits(self, pixels):
            self.batches.append(len(pixels))
            return pixels.flatten(1)[:, :3]

    class NoPeak:
        def probe(self):
            pass

    class Progress:
        total = 0

        def update(self, steps):
            pass

        def set_postfix_str(self, text):
            pass

    views = torch.randn(16, 3, 4, 4)
    reference = views.flatten(1)[:, :3]
    for agreement, batch1_calls in ((None, [1] * 16), ({}, [])):
        contender = Contender()
        forward_results([contender], views, 8, 1, reference, NoPeak(), Progress(), agreement)
        contender.batches.clear()
        (row,) = forward_results([contender], views, 1, 2, reference, NoPeak(), Progress(), agreement)
        assert contender.batches == [1, 1, 1] + batch1_calls  # warm-up and two rounds, then the agreement views
        assert row.agreement == 1.0 and row.batch == 1
