"""BEiT-base/16 224 speed on this CPU: hf_beit vs stock transformers (eager, sdpa) and timm, in one process.

All models carry the same random weights (1000 classes, per-layer relative position bias, layer scale, mean
pooling). Measured: forward images/s at batch 8 and 1 in fp32, bf16 (autocast for the peers) and dynamic int8;
max |logit difference| and top-1 agreement against hf_beit's plain fp32 path on real photographs (scikit-learn and
scikit-image); a training step (forward + backward + AdamW, batch 8); image preprocessing of real photographs
against transformers' BeitImageProcessor (``bench_preprocessing.py``); peak memory above the resting process
(measured in a child process, whose malloc settings would disturb the timings); and this machine's peak GEMM rate
per precision, probed between the model timings. Implementations are interleaved in
every round so load from other processes hits them alike; "best" is the fastest call (least disturbed), "median"
the typical one. Ratios use best times.

Usage: ``python benchmarks/bench_model.py [--quick] [--threads 2] [--output benchmarks/results_model.md]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings

import torch
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_preprocessing
from _entries import PLAIN, build_entries, training_models
from _measure import GemmPeak, MemoryMeter, Timings, time_call
from _photos import photo_views
from _report import Row, forward_flops, onednn_version, write_report


def _forward_rows(entries, views, batch, rounds, peak, progress) -> list[Row]:
    """Interleaved timing of all entries; at batch 8 the timed calls also produce the agreement logits."""
    timings = {entry.label: Timings() for entry in entries}
    logits = {entry.label: [] for entry in entries}
    for entry in entries:
        entry.logits(views[:batch])  # warm-up: packing, one-off allocations
    for index in range(rounds):
        pixels = views[index * batch : (index + 1) * batch]
        for entry in entries:
            logits[entry.label].append(time_call(lambda e=entry, p=pixels: e.logits(p), timings[entry.label]))
        peak.probe()
        progress.update(1)
    reference = torch.cat(logits[f"{PLAIN} (fp32)"])
    return [
        Row(entry.name, entry.precision, batch, timings[entry.label], torch.cat(logits[entry.label]), reference)
        for entry in entries
    ]


def _memory_report(quick: bool, with_training: bool) -> dict[str, dict[str, int | None]]:
    """Peak memory per entry (batch 8) and training step, measured in this process with glibc tuned for it.

    Run in a child process (``--memory-json``): the meter changes malloc settings process-wide, which would change
    the timings of the parent.
    """
    meter = MemoryMeter()
    if not meter.available:
        return {}
    source, entries = build_entries(quick)
    pixels = photo_views(8)
    report = {}
    for entry in entries:
        entry.logits(pixels)  # warm-up
        entry.reset()
        before = meter.resident()
        entry.logits(pixels)  # repacks our weights
        packed = meter.resident() - before if entry.ours else None
        report[entry.label] = {"memory": meter.peak_during(lambda e=entry: e.logits(pixels)), "packed": packed}
    if with_training:
        training = _TrainingSteps(source, pixels)
        for name in training.models:
            training.step(name)  # warm-up: optimizer state
            report[f"training {name}"] = {"memory": meter.peak_during(lambda n=name: training.step(n)), "packed": None}
    return report


def _memory_from_child(args, rows: list[Row]) -> None:
    """Fill ``memory``/``packed`` of the batch-8 and training rows from a ``--memory-json`` child process."""
    command = [sys.executable, os.path.abspath(__file__), "--memory-json", "--threads", str(args.threads)]
    command += ["--quick"] * args.quick + ["--no-training"] * args.no_training
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for row in rows:
        key = f"training {row.name}" if row.training else f"{row.name} ({row.precision})"
        if row.batch == 8 and key in report:
            row.memory, row.packed = report[key]["memory"], report[key]["packed"]


class _TrainingSteps:
    """Forward + backward + AdamW at batch 8 for hf_beit, transformers and timm on the same weights."""

    def __init__(self, source, views) -> None:
        self.models = training_models(source)
        self.optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-5) for name, (m, _) in self.models.items()}
        self.labels = torch.arange(8) * 97 % source.config.num_labels
        self.views = views

    def step(self, name: str) -> None:
        model, call = self.models[name]
        loss = torch.nn.functional.cross_entropy(call(model, self.views[:8]), self.labels)
        loss.backward()
        self.optimizers[name].step()
        self.optimizers[name].zero_grad(set_to_none=True)

    def timed_rows(self, steps: int, progress) -> list[Row]:
        timings = {name: Timings() for name in self.models}
        for name in self.models:
            self.step(name)  # warm-up: optimizer state, autograd buffers
        for _ in range(steps):
            for name in self.models:
                time_call(lambda n=name: self.step(n), timings[name])
            progress.update(1)
        return [Row(name, "fp32", 8, timings[name], None, None, training=True) for name in self.models]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds and photos (~1/5 of the full run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-training", action="store_true", help="skip the training-step comparison")
    parser.add_argument("--no-preprocessing", action="store_true", help="skip the image-preprocessing comparison")
    parser.add_argument(
        "--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results_model.md")
    )
    parser.add_argument("--memory-json", action="store_true", help=argparse.SUPPRESS)  # child: memory only
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    torch.set_num_threads(args.threads)
    if args.memory_json:
        print(json.dumps(_memory_report(args.quick, not args.no_training)))
        return 0
    rounds8, rounds1, steps = (3, 4, 1) if args.quick else (14, 12, 4)
    started, load_before = time.time(), os.getloadavg()

    peak = GemmPeak()
    source, entries = build_entries(args.quick)
    views = photo_views(8 * rounds8)
    total = rounds8 + rounds1 + (0 if args.no_training else steps)
    with tqdm(total=total, desc="bench_model", unit="round") as progress:
        peak.probe()
        batch8 = _forward_rows(entries, views, 8, rounds8, peak, progress)
        batch1 = _forward_rows(entries, views, 1, rounds1, peak, progress)
        training = None if args.no_training else _TrainingSteps(source, views)
        training_rows = [] if training is None else training.timed_rows(steps, progress)
    rows = batch8 + batch1 + training_rows
    del entries, training
    preprocessing = None
    if not args.no_preprocessing:
        preprocessing = bench_preprocessing.measure(bench_preprocessing.load_photos(), 3 if args.quick else 9)
    _memory_from_child(args, rows)
    environment = {
        "command": "python benchmarks/bench_model.py" + (" --quick" if args.quick else ""),
        "cpu": _cpu_name(),
        "threads": args.threads,
        "torch": f"{torch.__version__} (oneDNN {onednn_version()}, {torch.backends.cpu.get_cpu_capability()})",
        "python": platform.python_version(),
        "load average (1 min) before/after": f"{load_before[0]:.1f} / {os.getloadavg()[0]:.1f}",
        "duration": f"{time.time() - started:.0f} s",
        "forward GFLOP per image": f"{forward_flops(source.config, 1) / 1e9:.1f} (2 x multiply-adds)",
    }
    report = write_report(args.output, rows, peak, environment, source.config, preprocessing)
    print(report)
    return 0


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            lines = cpuinfo.read().splitlines()
    except OSError:
        return platform.processor()
    info = dict(line.split(":", 1) for line in lines if ":" in line)
    info = {key.strip(): value.strip() for key, value in info.items()}
    return (
        f"{info.get('model name', '?')} (family {info.get('cpu family', '?')}, model {info.get('model', '?')}), "
        f"{os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    raise SystemExit(main())
