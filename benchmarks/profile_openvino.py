"""Where hf_beit's OpenVINO path spends its time: GEMMs, attention and the rest, per precision and batch size.

OpenVINO's own per-node counters (``PERF_COUNT``) on ``compile_for_engine(model, "openvino", precision)`` for
BEiT-base/16 224 (random weights, real photographs), next to the GEMM peak of each precision probed in the same run.
The last column bounds what any engine could gain with the same GEMMs: the run's time over the time the GEMM FLOPs
would take at the probed peak with attention and everything else free.

Usage: ``python benchmarks/profile_openvino.py [--threads 2] [--rounds 10] [--output PATH]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections import Counter

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_model
from _measure import GemmPeak
from _peers import build_hf_beit, hf_beit_variant
from _photos import calibration_views, photo_views
from _report import gemm_flops

from hf_beit.atomic_io import atomic_write_text
from hf_beit.export import compile_for_engine

GEMM_NODES = {"FullyConnected", "FullyConnectedQuantizedLegacy", "Convolution", "MatMul"}
CASES = (("fp32", True), ("bf16", True), ("bf16", False), ("int8", True), ("int8", False))


def attention_nodes(compiled) -> set[str]:
    """Names of the runtime nodes made from the model's attention (a fused node is named after any of its ops)."""
    names = set()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        original = info["originalLayersNames"].astype(str) if "originalLayersNames" in info else ""
        if "scaled_dot_product_attention" in original or "aten._softmax" in original:
            names.add(op.get_friendly_name())
    return names


def node_class(node, attention: set[str]) -> str:
    """``attention`` (the fused attention and what OpenVINO folded into it), ``GEMM`` or ``other``."""
    if node.node_name in attention:
        return "attention"
    return "GEMM" if node.node_type in GEMM_NODES else "other"


def profile(compiled, pixels, rounds: int) -> tuple[float, Counter, Counter]:
    """Median wall time of ``rounds`` calls, the mean milliseconds per node class and, of the ``other`` class, per
    node and kernel type."""
    request, attention = compiled.create_infer_request(), attention_nodes(compiled)
    for _ in range(3):
        request.infer({0: pixels})
    walls, per_class, other = [], Counter(), Counter()
    for _ in range(rounds):
        start = time.perf_counter()
        request.infer({0: pixels})
        walls.append(time.perf_counter() - start)
        for node in request.profiling_info:
            kind, ms = node_class(node, attention), node.real_time.total_seconds() * 1e3 / rounds
            per_class[kind] += ms
            if kind == "other":
                other[f"{node.node_type} ({node.exec_type})"] += ms
    return statistics.median(walls) * 1e3, per_class, other


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "results_openvino_profile.md"))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    import openvino

    load_before, started = os.getloadavg()[0], time.time()
    source = build_hf_beit(0)
    config = source.config
    views = photo_views(8).numpy()
    peak = GemmPeak()
    rows = []
    for precision, fp32_head in CASES:
        calibration = calibration_views(32) if precision == "int8" else None
        engine_model = compile_for_engine(hf_beit_variant(source), "openvino", precision, calibration=calibration,
                                          fp32_head=fp32_head, threads=args.threads, verify=False)
        backend = engine_model.backend
        for batch in (1, 8):
            model = backend.model.clone()
            model.reshape({model.inputs[0]: [batch, *views.shape[1:]]})
            compiled = openvino.Core().compile_model(model, "CPU", {**backend.config(), "PERF_COUNT": True})
            wall, per_class, other = profile(compiled, views[:batch], args.rounds)
            peak.probe()
            rows.append((precision, fp32_head, batch, wall, per_class, other))
    lines = ["# hf_beit's OpenVINO path per node class (OpenVINO PERF_COUNT)", "",
             f"- command: python benchmarks/profile_openvino.py --threads {args.threads} --rounds {args.rounds}",
             f"- cpu: {bench_model._cpu_name()}, threads {args.threads}",
             f"- versions: torch {torch.__version__}, openvino {openvino.__version__}",
             f"- load average (1 min) before/after: {load_before:.1f} / {os.getloadavg()[0]:.1f}; "
             f"duration {time.time() - started:.0f} s", "",
             "| precision | head | batch | ms per call | GEMM ms (share) | GEMM GFLOP/s (% of peak) "
             "| attention ms (share) | other ms (share) | bound: time / GEMM time at peak |",
             "|---|---|---|---|---|---|---|---|---|"]
    for precision, fp32_head, batch, wall, per_class, _ in rows:
        nodes = sum(per_class.values())
        flops = gemm_flops(config, batch)
        rate, best = flops / per_class["GEMM"] / 1e6, peak.peak(precision)
        share = {name: f"{ms:.2f} ({ms / nodes:.0%})" for name, ms in per_class.items()}
        head = "fp32" if fp32_head else "lowered"
        lines.append(f"| {precision} | {head} | {batch} | {wall:.2f} | {share['GEMM']} "
                     f"| {rate:.0f} ({rate / best:.0%}) | {share.get('attention', '-')} | {share.get('other', '-')} "
                     f"| {wall / (flops / best / 1e6):.2f}x |")
    lines += ["", "GEMM peaks of this run (GFLOP/s): " + ", ".join(
        f"{name} {rate:.0f}" for name, rate in sorted(peak.best.items())), ""]
    lines += ["The largest parts of `other` (node type, kernel): ms per call", "",
              "| precision | head | batch | largest four |", "|---|---|---|---|"]
    for precision, fp32_head, batch, _, _, other in rows:
        largest = ", ".join(f"{name} {ms:.2f}" for name, ms in other.most_common(4))
        lines.append(f"| {precision} | {'fp32' if fp32_head else 'lowered'} | {batch} | {largest} |")
    lines.append("")
    report = "\n".join(lines)
    atomic_write_text(args.output, report)  # a killed run leaves the previous results whole
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
