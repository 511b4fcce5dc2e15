"""Export BEiT-base models to ONNX and torch.export and measure how far onnxruntime / the program are from PyTorch.

Random weights (relative-position tables, layer scale and norms randomised too, so every path does real work),
fp32. Each case is exported once with ``hf_beit.export`` (dynamic batch), run at batch 1 and 2 (and at a second
resolution when it is dynamic) in onnxruntime and as an ``ExportedProgram``, and compared with the eager model
(its default inference path). Writes ``benchmarks/results_export.md``.
Usage: ``python benchmarks/bench_export.py [--cases classification,embeddings,segmentation,absolute-dynamic]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import onnxruntime
import torch

import hf_beit
from hf_beit.atomic_io import atomic_write_text
from hf_beit.export import OnnxRunner
from hf_beit.export.onnx_export import write_onnx
from hf_beit.export.program import trace_for_export
from hf_beit.export.tasks import TaskOutputs
from hf_beit.export.verify import check_inputs, max_differences

CASES = {
    # name: (model class, preset, config overrides, image_size argument)
    "classification": (hf_beit.BeitForImageClassification, "beit-base-patch16-224", {}, None),
    "classification-288x224": (hf_beit.BeitForImageClassification, "beit-base-patch16-224", {}, (288, 224)),
    "embeddings": (hf_beit.BeitModel, "beit-base-patch16-224", {}, None),
    "segmentation": (hf_beit.BeitForSemanticSegmentation, "beit-base-patch16-640", {}, None),
    "absolute-dynamic": (
        hf_beit.BeitForImageClassification,
        "beit-base-patch16-224",
        {"use_relative_position_bias": False, "use_absolute_position_embeddings": True},
        "dynamic",
    ),
}


@torch.no_grad()
def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturb every floating tensor so position tables, layer scale and norms are not at their initial values."""
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if tensor.is_floating_point():
            noise = torch.randn(tensor.shape, generator=generator)
            scale = 0.5 if "relative_position" in name else 0.02
            tensor.add_(noise * scale)
    return model.eval()


def run_case(name: str, folder: Path) -> dict:
    cls, preset, overrides, image_size = CASES[name]
    model = randomise(cls(hf_beit.BeitConfig.from_preset(preset, **overrides)))
    start = time.perf_counter()
    traced = trace_for_export(model, image_size=image_size)
    traced_seconds = time.perf_counter() - start
    path = write_onnx(traced, folder / f"{name}.onnx")
    onnx_seconds = time.perf_counter() - start - traced_seconds
    eager = TaskOutputs(model, traced.output_names).eval()
    inputs = check_inputs(traced.input_spec)
    module = traced.program.module()
    with torch.no_grad():
        scale = max(value.abs().max().item() for value in eager(inputs[0]).values())
    return {
        "case": name,
        "scale": scale,
        "preset": preset + (" (absolute positions)" if overrides else ""),
        "input": traced.input_spec.describe(),
        "checked": ", ".join(f"{tuple(x.shape[0:1] + x.shape[2:])}" for x in inputs),
        "onnx": max_differences(eager, OnnxRunner(path), inputs),
        "program": max_differences(eager, lambda x: module(pixel_values=x), inputs),
        "export_s": traced_seconds + onnx_seconds,
        "mb": path.stat().st_size / 1e6,
    }


def report(rows: list[dict], command: str, seconds: float, loads: tuple[float, float]) -> str:
    lines = [
        "# hf_beit.export: BEiT-base exported to ONNX and torch.export, max |exported - eager| (fp32)",
        "",
        f"- command: {command}",
        f"- torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, python {platform.python_version()}",
        f"- load average (1 min) before/after: {loads[0]:.1f} / {loads[1]:.1f}; duration {seconds:.0f} s",
        "- random weights (relative tables, layer scale, norms randomised); eager = the model's default inference",
        "  path (oneDNN fp32); inputs: standard normal pixels, (batch, height, width) as listed",
        "",
        (
            "| case | model | exported input | checked at | max abs output | onnxruntime | ExportedProgram "
            "| export | file |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        onnx_diff = ", ".join(f"{k} {v:.1e}" for k, v in row["onnx"].items())
        program_diff = ", ".join(f"{k} {v:.1e}" for k, v in row["program"].items())
        lines.append(
            f"| {row['case']} | {row['preset']} | {row['input']} | {row['checked']} | {row['scale']:.2g} | {onnx_diff} "
            f"| {program_diff} "
            f"| {row['export_s']:.0f} s | {row['mb']:.0f} MB |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--output", default=str(Path(__file__).with_name("results_export.md")))
    args = parser.parse_args()
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.cases.split(","):
            rows.append(run_case(name, Path(folder)))
            print(rows[-1], flush=True)
    command = "python benchmarks/bench_export.py" + (f" --cases {args.cases}" if args.cases != ",".join(CASES) else "")
    text = report(rows, command, time.perf_counter() - start, (load_before, os.getloadavg()[0]))
    atomic_write_text(args.output, text)
    print(text)


if __name__ == "__main__":
    main()
