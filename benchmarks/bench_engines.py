"""BEiT-base/16 224 on this CPU: hf_beit's deployment paths vs ONNX Runtime, OpenVINO and torch.compile, side by side.

One process, the same random weights everywhere (``_peers.build_hf_beit``). Contenders: hf_beit eager (its oneDNN
kernels) and ``hf_beit.export.compile_for_engine`` (OpenVINO, ONNX Runtime on hf_beit's export with its graph
knowledge applied; inductor on the same rewritten model; also with the classifier lowered with the rest,
``fp32_head=False``) against what a user of stock transformers or timm would reach for -- OpenVINO
(``convert_model``; int8 with NNCF), ONNX Runtime (full graph optimisation, with and without its transformer fusions;
int8 dynamic), torch.compile (default and with weight freezing), eager PyTorch -- in fp32, bf16 and int8 at batch 8
and 1. Every round times every contender once on the next photos, in a shuffled order (interleaved, so load from
other processes hits all alike) and probes the GEMM peak per precision; the tables use medians. Top-1 agreement is
with hf_beit's plain fp32 path on ``AGREEMENT_VIEWS`` views of real photographs (``_photos.photo_views``), run
untimed after the rounds at the contender's batch size; int8 calibration uses other views of the same photos
(``_photos.calibration_views``). A fine-tuning step (fp32 and bf16 autocast; eager and compiled) is timed the same
way.

Usage: ``python benchmarks/bench_engines.py [--quick] [--threads 2] [--no-training] [--output PATH]``
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _contenders as c
import bench_model
from _engine_report import Result, detail_table, result, summary_table, target_lines
from _measure import GemmPeak, Timings, time_call
from _peers import build_hf_beit, hf_beit_variant, to_timm, to_transformers
from _photos import calibration_views, photo_views
from _report import forward_flops, onednn_version, peak_table
from _training import TrainingStep

from hf_beit.acceleration import bf16_available, optimize_for_inference
from hf_beit.atomic_io import atomic_write_text

# photo views each contender's top-1 agreement is measured on (a multiple of both batch sizes; 114 exist)
AGREEMENT_VIEWS, AGREEMENT_VIEWS_QUICK = 112, 24


def precisions_here() -> tuple[str, ...]:
    """The precisions this CPU runs natively: bf16 only with AVX-512 BF16 / AMX (elsewhere OpenVINO would run its
    bf16 hint as f32 and PyTorch would emulate it, so the rows would compare nothing)."""
    return ("fp32", "bf16", "int8") if bf16_available() else ("fp32", "int8")


def openvino_int8_pays() -> bool:
    """Whether OpenVINO's int8 is worth a place in ``--quick``: only with AVX-512 VNNI. Without it (AVX2), full runs
    measured it at 0.5-0.65x of ONNX Runtime's dynamic int8, no faster than its own fp32 (results_engines.md)."""
    probe = getattr(torch.cpu, "_is_vnni_supported", None)
    return bool(probe and probe())


def build_contenders(source, quick: bool, calibration: torch.Tensor, folder: Path, progress) -> list[c.Contender]:
    """Every contender, built in turn (build times recorded).

    quick: each family's engines only -- hf_beit's OpenVINO and ONNX Runtime paths (eager only in bf16, which ONNX
    Runtime lacks; hf_beit eager is bench_model.py's subject) against OpenVINO and ONNX Runtime on transformers;
    OpenVINO int8 only where it pays (``openvino_int8_pays``), and no fine-tuning steps.
    """
    stock = to_transformers(source, "sdpa")
    timm_model = None if quick else to_timm(source)
    builders = [
        ("fp32", lambda: c.ours_engine(source, "openvino", "fp32", None)),
        ("fp32", lambda: c.ours_engine(source, "onnxruntime", "fp32", None)),
        ("fp32", lambda: c.openvino_peer(stock, "transformers", "fp32")),
        ("fp32", lambda: c.onnxruntime_peer(stock, "transformers", "fp32", fusions=False, folder=folder)),
        ("bf16", lambda: c.ours_eager(source, hf_beit_variant, "bf16")),
        ("bf16", lambda: c.ours_engine(source, "openvino", "bf16", None)),
        ("bf16", lambda: c.ours_engine(source, "inductor", "bf16", None)),
        ("bf16", lambda: c.openvino_peer(stock, "transformers", "bf16")),
        ("int8", lambda: c.ours_engine(source, "onnxruntime", "int8", None)),
        ("int8", lambda: c.onnxruntime_peer(stock, "transformers", "int8", fusions=False, folder=folder)),
    ]
    if not quick or openvino_int8_pays():
        builders += [
            ("int8", lambda: c.ours_engine(source, "openvino", "int8", calibration)),
            ("int8", lambda: c.openvino_peer(stock, "transformers", "int8", calibration)),
        ]
    if not quick:
        builders += [
            ("fp32", lambda: c.ours_eager(source, hf_beit_variant, "fp32")),
            ("int8", lambda: c.ours_eager(source, hf_beit_variant, "int8")),
            ("fp32", lambda: c.ours_engine(source, "inductor", "fp32", None)),
            ("bf16", lambda: c.ours_engine(source, "openvino", "bf16", None, fp32_head=False)),
            ("bf16", lambda: c.ours_engine(source, "inductor", "bf16", None, fp32_head=False)),
            ("int8", lambda: c.ours_engine(source, "openvino", "int8", calibration, fp32_head=False)),
            ("fp32", lambda: c.onnxruntime_peer(stock, "transformers", "fp32", fusions=True, folder=folder)),
            ("fp32", lambda: c.timed_build("transformers sdpa eager", "fp32", lambda: c.eager(stock))),
            ("fp32", lambda: c.timed_build("timm eager", "fp32", lambda: c.eager(timm_model, call=timm_model))),
            ("fp32", lambda: c.compiled_peer(stock, "transformers", "fp32", None, freezing=False)),
            ("fp32", lambda: c.compiled_peer(timm_model, "timm", "fp32", None, freezing=True)),
            ("bf16", lambda: c.timed_build("transformers sdpa + autocast", "bf16",
                                           lambda: c.eager(stock, autocast=True))),
            ("bf16", lambda: c.timed_build("timm + autocast", "bf16", lambda: c.eager(timm_model, True,
                                                                                       call=timm_model))),
            ("bf16", lambda: c.compiled_peer(timm_model, "timm", "bf16", None, freezing=True)),
            ("int8", lambda: c.torch_dynamic_int8(stock, "transformers", None)),
        ]
    builders = [build for precision, build in builders if precision in precisions_here()]
    progress.total += len(builders)
    progress.refresh()
    contenders = []
    for build in builders:
        contenders.append(build())
        progress.set_postfix_str(contenders[-1].label[:40])
        progress.update(1)
    return contenders


def forward_results(contenders, views, batch: int, rounds: int, reference, peak: GemmPeak, progress,
                    agreement: dict[str, torch.Tensor] | None = None) -> list[Result]:
    """Interleaved timing: each round runs every contender once on the round's photos, in a shuffled order.

    ``agreement``: logits per contender label, filled by the first call and reused by later ones (``--quick``
    measures agreement at batch 8 only); None: each batch size runs every view itself.

    Shuffled (seeded) because an engine's worker threads keep spinning after its call and slow whatever runs next:
    measured, hf_beit inductor bf16 at batch 1 ran at 22.1 img/s right after OpenVINO and 24.5 right before it.
    """
    timings = {x.label: Timings() for x in contenders}
    for contender in contenders:
        contender.logits(views[:batch])  # warm-up
    for index in range(rounds):
        pixels = views[index * batch : (index + 1) * batch]
        order = list(contenders)
        random.Random(index).shuffle(order)
        for contender in order:
            def call(x=contender, p=pixels):
                return x.logits(p)

            time_call(call, timings[contender.label])
        peak.probe()
        progress.update(1)
    progress.total += len(contenders)
    results = []
    for contender in contenders:
        if agreement is None:
            logits = agreement_logits(contender, views, batch)
        elif contender.label in agreement:
            logits = agreement[contender.label]
        else:
            logits = agreement[contender.label] = agreement_logits(contender, views, batch)
        results.append(result(contender, batch, timings[contender.label], logits, reference))
        progress.set_postfix_str(f"agreement b{batch}: {contender.label[:30]}")
        progress.update(1)
    return results


def agreement_logits(contender, views, batch: int) -> torch.Tensor:
    """Untimed: the contender's logits for every view, ``batch`` at a time (its compiled shape).

    Agreement comes from all views rather than the timed rounds' share of them: at 72 views one differing top-1
    already reads 98.6%, so a >= 99% target could only be met with none.
    """
    return torch.cat([contender.logits(views[i : i + batch]) for i in range(0, len(views), batch)])


def training_results(source, views, steps: int, progress) -> list[Result]:
    """Fine-tuning steps of hf_beit, transformers and timm (fp32, bf16 autocast), and hf_beit compiled."""
    labels = torch.arange(8) * 97 % source.config.num_labels
    pixels = views[:8]
    hf_call, timm_call = (lambda m, p: m(pixel_values=p).logits), (lambda m, p: m(p))
    # the steps update their model's weights: hf_beit trains a copy (hf_beit_variant would share source's tensors)
    fresh = {"hf_beit": lambda: copy.deepcopy(source), "transformers sdpa": lambda: to_transformers(source, "sdpa"),
             "timm": lambda: to_timm(source)}
    calls = {"hf_beit": hf_call, "transformers sdpa": hf_call, "timm": timm_call}
    steppers = [TrainingStep(name, fresh[name](), calls[name], precision, ours=name == "hf_beit")
                for precision in ("fp32", "bf16") if precision in precisions_here() for name in fresh]
    steppers.append(TrainingStep("hf_beit", fresh["hf_beit"](), hf_call, "fp32", compiled=True, ours=True))
    for step in steppers:
        step.warm_up(pixels, labels)
    timings = {id(step): Timings() for step in steppers}
    for index in range(steps):
        order = list(steppers)
        random.Random(index).shuffle(order)  # as for the forward contenders: no stepper always runs after another
        for step in order:
            time_call(lambda s=step: s(pixels, labels), timings[id(step)])
        progress.update(1)
    nan = float("nan")
    return [Result(s.name, s.precision, 8, s.ours, timings[id(s)], nan, nan, s.build_seconds) for s in steppers]


def training_table(rows: list[Result]) -> list[str]:
    if not rows:
        return []
    lines = ["### Fine-tuning step (forward + backward + AdamW, batch 8)", "",
             "| precision | implementation | img/s median | img/s best | vs fastest peer (median) | first step s |",
             "|---|---|---|---|---|---|"]
    for precision in ("fp32", "bf16"):
        group = [r for r in rows if r.precision == precision]
        peers = [r.median_rate for r in group if not r.ours]
        for r in group:
            lines.append(f"| {precision} | {r.name} | {r.median_rate:.2f} | {r.rate:.2f} "
                         f"| {r.median_rate / max(peers):.2f}x | {r.build_seconds:.1f} |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="the engines only, few rounds, agreement at batch 8, no training (< 5 min)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-training", action="store_true", help="skip the fine-tuning step comparison")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "results_engines.md"))
    parser.add_argument("--render-only", metavar="JSON", help="re-render the tables from a run's saved timings")
    args = parser.parse_args(argv)
    if args.render_only:
        results, training, peak, environment = _load_raw(args.render_only)
        config = build_hf_beit(0).config
        atomic_write_text(args.output, report := render(results, training, peak, config, environment))
        print(report)
        return 0
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    rounds8, rounds1, steps = (3, 5, 0) if args.quick else (9, 24, 0 if args.no_training else 7)
    started, load_before = time.time(), os.getloadavg()
    peak = GemmPeak()
    source = build_hf_beit(0)
    views = photo_views(AGREEMENT_VIEWS_QUICK if args.quick else AGREEMENT_VIEWS)
    calibration = calibration_views(16 if args.quick else 95)
    with torch.no_grad():
        plain = optimize_for_inference(hf_beit_variant(source), "none")
        reference = torch.cat([plain(pixel_values=views[i : i + 8]).logits for i in range(0, len(views), 8)])
    del plain
    total = rounds8 + rounds1 + steps  # build_contenders adds one per contender
    with tempfile.TemporaryDirectory(prefix="bench_engines_") as folder, \
            tqdm(total=total, desc="bench_engines", unit="step") as progress:
        # Training first: stock transformers caches its relative-position index process-wide, and an index made
        # under the forward contenders' inference_mode cannot be saved for backward later.
        training = training_results(source, views, steps, progress) if steps else []
        contenders = build_contenders(source, args.quick, calibration, Path(folder), progress)
        peak.probe()
        agreement = {} if args.quick else None
        results = forward_results(contenders, views, 8, rounds8, reference, peak, progress, agreement)
        results += forward_results(contenders, views, 1, rounds1, reference, peak, progress, agreement)
        del contenders
    environment = _environment(args, started, load_before, len(views))
    _save_raw(args.output, results, training, peak, environment)
    report = render(results, training, peak, source.config, environment)
    atomic_write_text(args.output, report)
    print(report)
    return 0


def _save_raw(output: str, results, training, peak: GemmPeak, environment: dict) -> None:
    """Every timing next to the report (``<output>.json``), so the tables can be re-rendered (``--render-only``)."""
    def rows(items):
        return [{**{k: v for k, v in vars(r).items() if k != "timings"}, "seconds": r.timings.seconds} for r in items]

    raw = {"results": rows(results), "training": rows(training), "peak": peak.best, "peak_shapes": peak.best_shape,
           "environment": environment}
    atomic_write_text(Path(output).with_suffix(".json"), json.dumps(raw, indent=1))


def _load_raw(path: str):
    raw = json.loads(Path(path).read_text())

    def rows(items):
        return [Result(**{k: v for k, v in item.items() if k != "seconds"}, timings=Timings(item["seconds"]))
                for item in items]

    peak = GemmPeak.__new__(GemmPeak)
    peak.best = raw["peak"]
    peak.best_shape = {name: tuple(shape) for name, shape in raw.get("peak_shapes", {}).items()}
    return rows(raw["results"]), rows(raw["training"]), peak, raw["environment"]


def _environment(args, started: float, load_before, agreement_views: int) -> dict[str, str]:
    import onnxruntime
    import openvino

    try:
        import nncf

        nncf_version = nncf.__version__
    except ImportError:
        nncf_version = "-"
    return {
        "command": "python benchmarks/bench_engines.py" + (" --quick" if args.quick
                                                           else " --no-training" * args.no_training),
        "cpu": bench_model._cpu_name(),
        "threads": str(args.threads),
        "photo views for top-1 agreement": str(agreement_views) + (" (run at batch 8; the batch-1 rows reuse them)"
                                                                   if args.quick else ""),
        "precisions": ", ".join(precisions_here()) + ("" if "bf16" in precisions_here() else
                                                      " (no native bf16 on this CPU: no bf16 rows)"),
        "versions": (f"torch {torch.__version__} (oneDNN {onednn_version()}), onnxruntime {onnxruntime.__version__}, "
                     f"openvino {openvino.__version__}, nncf {nncf_version}, python {platform.python_version()}"),
        "load average (1 min) before/after": f"{load_before[0]:.1f} / {os.getloadavg()[0]:.1f}",
        "duration": f"{time.time() - started:.0f} s",
    }


def render(results, training, peak, config, environment) -> str:
    flops = forward_flops(config, 1)
    lines = ["# BEiT-base/16 224: hf_beit's deployment paths vs ONNX Runtime, OpenVINO, torch.compile", ""]
    lines += [f"- {key}: {value}" for key, value in environment.items()]
    lines += [f"- forward GFLOP per image: {flops / 1e9:.1f}", ""]
    lines += (
        summary_table(results, peak, flops)
        + target_lines(results)
        + peak_table(peak)
        + detail_table(results, peak, flops)
    )
    lines += training_table(training)
    lines += [
        "Notes: ratios and rates are medians of interleaved rounds (best calls in the detail table). Agreement = top-1",
        "agreement with hf_beit's plain fp32 path on the photo views counted above, each contender run on all of them",
        "after the timed rounds, at its batch size (--quick: at batch 8 only); the summary picks hf_beit's fastest",
        "path whose agreement is at least the fastest contender's (and the target's, where one is set). Share of",
        "GEMM peak = img/s x GFLOP per image / the fastest GEMM rate of that precision seen in this run. Build s =",
        "export, conversion, quantisation and compilation (batch 8 and 1) before the first timed call.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
