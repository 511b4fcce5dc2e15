"""Train a tiny BEiT from scratch on scikit-learn's handwritten digits with ``hf-beit train classification``.

The digits (1797 8x8 images, upsampled to 32x32 RGB) are split 80/10/10 (stratified): the validation split picks
the best checkpoint, the test split is evaluated once at the end. The run goes through the real command line,
so the measured wall time includes start-up, per-epoch evaluation and checkpointing.

    python benchmarks/bench_train_digits.py            # appends a row to benchmarks/results_train_digits.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name("results_train_digits.md")
# The recipe: tiny preset (96 wide, 6 blocks, 8x8 patches), no layer decay from scratch, light augmentation.
RECIPE = [
    "--config", "tiny", "--epochs", "50", "--batch-size", "64", "--lr", "2e-3", "--layer-decay", "1.0",
    "--weight-decay", "0.05", "--warmup", "0.1", "--drop-path", "0.1", "--label-smoothing", "0.1",
    "--hflip", "0", "--crop-scale", "0.7", "1", "--no-rand-augment", "--color-jitter", "0", "--random-erasing", "0",
]  # fmt: skip
HEADER = """# Tiny BEiT from scratch on scikit-learn digits (CPU)

`python benchmarks/bench_train_digits.py` runs `hf-beit train classification --dataset digits` with the recipe in
the script (tiny preset: hidden 96, 6 blocks, 3 heads, 32x32 input, 8x8 patches, relative position bias, mean
pooling; AdamW, cosine schedule with 10% warmup, label smoothing 0.1, drop path 0.1, random resized crop
(0.7-1)). Split 1437 / 180 / 180 (train / validation / test, stratified). *Validation* is the best
epoch's accuracy (it also selects that epoch), *test* is measured once on the held-out split. Wall time
includes process start-up, evaluation after every epoch and checkpointing; *CPU time* is the user+system time of
the run. The machine is shared with other jobs, so wall time depends on the load shown.

| date (UTC) | CPU | threads | load (1 min) start / end | seed | epochs | wall time | CPU time \
| validation acc | test acc | top-5 (test) |
|---|---|---|---|---|---|---|---|---|---|---|
"""


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} x{os.cpu_count()}"


def _children_cpu_seconds() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for this tiny model)")
    parser.add_argument("--output-dir", type=Path, default=None, help="training output (default: a temp dir)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="further hf-beit flags, after --")
    args = parser.parse_args(argv)
    extra = [flag for flag in args.extra if flag != "--"]

    with tempfile.TemporaryDirectory() as scratch:
        output_dir = args.output_dir or Path(scratch) / "digits"
        command = [sys.executable, "-m", "hf_beit.cli", "train", "classification", "--dataset", "digits"]
        command += ["--output-dir", str(output_dir), "--num-threads", str(args.threads), "--no-progress", *RECIPE]
        command += extra
        print("$", " ".join(command[1:]), flush=True)
        load_start = os.getloadavg()[0]
        start, cpu_start = time.perf_counter(), _children_cpu_seconds()
        subprocess.run(command, check=True)
        wall, cpu = time.perf_counter() - start, _children_cpu_seconds() - cpu_start
        load_end = os.getloadavg()[0]
        results = json.loads((output_dir / "model" / "eval_results.json").read_text())
        arguments = json.loads((output_dir / "arguments.json").read_text())

    row = (
        f"| {datetime.now(timezone.utc):%Y-%m-%d %H:%M} | {_cpu_name()} | {args.threads} | "
        f"{load_start:.1f} / {load_end:.1f} | {arguments['seed']} | {arguments['epochs']:g} | {wall / 60:.1f} min | "
        f"{cpu / 60:.1f} min | "
        f"{results['eval_accuracy']:.2%} | {results['test_accuracy']:.2%} | {results['test_top5_accuracy']:.2%} |"
    )
    if not args.results.exists():
        args.results.write_text(HEADER)
    with open(args.results, "a") as handle:
        handle.write(row + "\n")
    print(row)
    print(f"torch {torch.__version__}; results appended to {args.results}")
    return 0 if results["eval_accuracy"] >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
