"""BEiT-base/16 224 speed on this CPU: hf_beit vs stock transformers (eager, sdpa) and timm, in one process.

All models carry the same random weights (1000 classes, per-layer relative position bias, layer scale, mean
pooling). Measured: forward images/s at batch 8 and 1 in fp32, bf16 (autocast for the peers) and dynamic int8;
max |logit difference| and top-1 agreement against hf_beit's plain fp32 path on real photographs (scikit-learn and
scikit-image); a training step (forward + backward + AdamW, batch 8); peak memory above the resting process; and
this machine's peak GEMM rate per precision, probed between the model timings. Implementations are interleaved in
every round so load from other processes hits them alike; "best" is the fastest call (least disturbed), "median"
the typical one. Ratios use best times.

Usage: ``python benchmarks/bench_model.py [--quick] [--threads 2] [--output benchmarks/results_model.md]``
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings

import torch
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _entries import PLAIN, build_entries, training_models
from _measure import GemmPeak, MemoryMeter, Timings, time_call
from _photos import photo_views
from _report import Row, forward_flops, onednn_version, write_report


def _forward_rows(entries, views, batch, rounds, peak, meter, progress) -> list[Row]:
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
    rows = []
    reference = torch.cat(logits[f"{PLAIN} (fp32)"])
    for entry in entries:
        memory = packed = None
        if batch > 1 and meter.available:
            entry.reset()
            before = meter.resident()
            entry.logits(views[:batch])  # repacks our weights
            packed = meter.resident() - before
            memory = meter.peak_during(lambda e=entry: e.logits(views[:batch]))
        rows.append(
            Row(
                entry.name,
                entry.precision,
                batch,
                timings[entry.label],
                torch.cat(logits[entry.label]),
                reference,
                memory,
                packed if entry.ours else None,
            )
        )
    return rows


def _training_rows(source, views, steps, meter, progress) -> list[Row]:
    """Forward + backward + AdamW at batch 8, interleaved; memory is the peak of one step."""
    models = training_models(source)
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-5) for name, (model, _) in models.items()}
    labels = torch.arange(8) * 97 % source.config.num_labels
    timings = {name: Timings() for name in models}

    def step(name):
        model, call = models[name]
        loss = torch.nn.functional.cross_entropy(call(model, views[:8]), labels)
        loss.backward()
        optimizers[name].step()
        optimizers[name].zero_grad(set_to_none=True)

    for name in models:
        step(name)  # warm-up: optimizer state, autograd buffers
    for _ in range(steps):
        for name in models:
            time_call(lambda n=name: step(n), timings[name])
        progress.update(1)
    memory = {name: meter.peak_during(lambda n=name: step(n)) for name in models}
    return [Row(name, "fp32", 8, timings[name], None, None, memory[name], None, training=True) for name in models]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds and photos (~1/5 of the full run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-training", action="store_true", help="skip the training-step comparison")
    parser.add_argument(
        "--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results_model.md")
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    torch.set_num_threads(args.threads)
    rounds8, rounds1, steps = (3, 4, 1) if args.quick else (14, 12, 4)
    started, load_before = time.time(), os.getloadavg()

    meter, peak = MemoryMeter(), GemmPeak()
    source, entries = build_entries(args.quick)
    views = photo_views(8 * rounds8)
    total = rounds8 + rounds1 + (0 if args.no_training else steps)
    with tqdm(total=total, desc="bench_model", unit="round") as progress:
        peak.probe()
        rows = _forward_rows(entries, views, 8, rounds8, peak, meter, progress)
        rows += _forward_rows(entries, views, 1, rounds1, peak, meter, progress)
        del entries
        if not args.no_training:
            rows += _training_rows(source, views, steps, meter, progress)
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
    report = write_report(args.output, rows, peak, environment, source.config)
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
    return f"{info.get('model name', '?')} (family {info.get('cpu family', '?')}, model {info.get('model', '?')}), {os.cpu_count()} CPUs"


if __name__ == "__main__":
    raise SystemExit(main())
