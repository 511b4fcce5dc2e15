"""Training curves as pictures: the losses and the evaluation metrics of ``training_log.jsonl``, one PNG each."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..pictures import line_chart
from .run_directory import LOSS_PICTURE, METRICS_PICTURE

_SKIP = {"step", "epoch", "learning_rate", "grad_norm", "total_flos", "train_runtime", "train_samples_per_second",
         "train_steps_per_second", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second"}  # fmt: skip


def read_log(path: str | os.PathLike) -> list[dict]:
    """The records of a ``training_log.jsonl`` (a torn last line from a killed run is skipped)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def write_curves(log_path: str | os.PathLike, output_dir: str | os.PathLike) -> list[Path]:
    """``loss.png`` (training and evaluation loss against the step) and ``metrics.png`` (every other evaluation
    number) from a training log; returns the pictures written (none for a log without points)."""
    records = read_log(log_path)
    series: dict[str, list[tuple[float, float]]] = {}
    for record in records:
        for key, value in record.items():
            if key in _SKIP or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            series.setdefault(key, []).append((float(record.get("step", 0)), float(value)))
    losses = {key: points for key, points in series.items() if key in ("loss", "eval_loss")}
    metrics = {key: points for key, points in series.items() if key.startswith("eval_") and key not in losses}
    written = []
    if losses:
        written.append(line_chart(losses, Path(output_dir) / LOSS_PICTURE, "Loss", x_label="step"))
    if metrics:
        written.append(line_chart(metrics, Path(output_dir) / METRICS_PICTURE, "Evaluation metrics", x_label="step"))
    return written
