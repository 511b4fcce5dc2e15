"""Tables of bench_model.py: rates, ratios to the peers, fraction of peak GEMM rate, agreement, memory, targets."""

from __future__ import annotations

import re
from dataclasses import dataclass

import bench_preprocessing
import torch
from _entries import TIMM, TRANSFORMERS
from _measure import GemmPeak, Timings

from hf_beit.atomic_io import atomic_write_text

MIB = 2**20


@dataclass
class Row:
    name: str
    precision: str
    batch: int
    timings: Timings
    logits: torch.Tensor | None
    reference: torch.Tensor | None
    memory: int | None = None  # peak bytes above resting RSS during one call (filled after all timings)
    packed: int | None = None  # resident bytes added by packed weights
    training: bool = False

    @property
    def rate(self) -> float:
        return self.batch / self.timings.best

    @property
    def median_rate(self) -> float:
        return self.batch / self.timings.median

    @property
    def max_diff(self) -> float:
        return (self.logits - self.reference).abs().max().item()

    @property
    def agreement(self) -> float:
        return (self.logits.argmax(-1) == self.reference.argmax(-1)).float().mean().item()


def forward_flops(config, batch: int) -> float:
    """2 x multiply-adds of one forward: patch embedding, per block qkv/proj/MLP GEMMs and attention, head."""
    return gemm_flops(config, batch) + attention_flops(config, batch)


def gemm_flops(config, batch: int) -> float:
    """The part of :func:`forward_flops` in GEMMs with weights: patch embedding, qkv/proj/MLP, head."""
    tokens = _tokens(config)
    dim, hidden = config.hidden_size, config.intermediate_size
    patch = (tokens - 1) * dim * config.num_channels * config.patch_size**2
    block = tokens * dim * (4 * dim + 2 * hidden)
    return 2.0 * batch * (config.num_hidden_layers * block + patch + dim * config.num_labels)


def attention_flops(config, batch: int) -> float:
    """The part of :func:`forward_flops` in attention: scores (q k^T) and their weighted sum of v, per block."""
    tokens = _tokens(config)
    return 2.0 * batch * config.num_hidden_layers * 2 * tokens * tokens * config.hidden_size


def _tokens(config) -> int:
    return (config.image_size // config.patch_size) ** 2 + 1


def _find(rows: list[Row], name: str, precision: str, batch: int, training: bool = False) -> Row | None:
    for row in rows:
        if (row.name, row.precision, row.batch, row.training) == (name, precision, batch, training):
            return row
    return None


def _ratio(row: Row, peer: Row | None) -> str:
    return f"{row.rate / peer.rate:.2f}x" if peer is not None else "-"


def _mib(value: int | None) -> str:
    return f"{value / MIB:.0f}" if value is not None else "-"


def _forward_table(rows: list[Row], batch: int, peak: GemmPeak, flops: float) -> list[str]:
    lines = [
        f"### Forward, batch {batch}",
        "",
        (
            "| precision | implementation | img/s best | img/s median | vs transformers sdpa | vs timm "
            "| % of peak GEMM | max abs diff vs plain fp32 | top-1 agreement "
            "| peak MiB | packed MiB | page faults / call |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.batch != batch or row.training:
            continue
        fraction = row.rate * flops / (peak.peak(row.precision) * 1e9)
        lines.append(
            f"| {row.precision} | {row.name} | {row.rate:.2f} | {row.median_rate:.2f} "
            f"| {_ratio(row, _find(rows, TRANSFORMERS, row.precision, batch))} "
            f"| {_ratio(row, _find(rows, TIMM, row.precision, batch))} | {100 * fraction:.0f}% "
            f"| {row.max_diff:.1e} | {100 * row.agreement:.1f}% ({len(row.logits)}) "
            f"| {_mib(row.memory)} | {_mib(row.packed)} | {_count(row.timings.median_page_faults)} |"
        )
    return lines + [""]


def _count(value: float | None) -> str:
    return f"{value:.0f}" if value is not None else "-"


def _training_table(rows: list[Row]) -> list[str]:
    training = [row for row in rows if row.training]
    if not training:
        return []
    lines = [
        "### Training step (forward + backward + AdamW, fp32, batch 8)",
        "",
        "| implementation | img/s best | img/s median | vs transformers sdpa | vs timm | peak MiB |",
        "|---|---|---|---|---|---|",
    ]
    for row in training:
        lines.append(
            f"| {row.name} | {row.rate:.2f} | {row.median_rate:.2f} "
            f"| {_ratio(row, _find(rows, TRANSFORMERS, 'fp32', 8, True))} "
            f"| {_ratio(row, _find(rows, TIMM, 'fp32', 8, True))} | {_mib(row.memory)} |"
        )
    return lines + [""]


def _targets(rows: list[Row], peak: GemmPeak, flops: float) -> list[str]:
    """The issue's targets, each with the measured value."""
    checks = [
        ("fp32 batch 8 vs transformers sdpa", "hf_beit", "fp32", 8, TRANSFORMERS, 1.8),
        ("fp32 batch 8 vs timm", "hf_beit", "fp32", 8, TIMM, 1.6),
        ("bf16 batch 8 vs transformers sdpa + autocast", "hf_beit", "bf16", 8, TRANSFORMERS, 1.3),
        ("bf16 batch 8 vs timm + autocast", "hf_beit", "bf16", 8, TIMM, 1.1),
        ("fp32 batch 1 vs transformers sdpa", "hf_beit", "fp32", 1, TRANSFORMERS, 1.5),
        ("int8 batch 8 vs hf_beit fp32", "hf_beit", "int8", 8, "hf_beit fp32", 1.0),
    ]
    lines = [
        "### Targets",
        "",
        "| target | required | measured | met | ceiling at 100% of the GEMM peak |",
        "|---|---|---|---|---|",
    ]
    for label, name, precision, batch, peer_name, required in checks:
        row = _find(rows, name, precision, batch)
        if peer_name == "hf_beit fp32":
            peer = _find(rows, "hf_beit", "fp32", batch)
        else:
            peer = _find(rows, peer_name, precision, batch)
        if row is None or peer is None:
            continue
        ratio = row.rate / peer.rate
        # the ratio an implementation running every FLOP at this run's GEMM peak would reach against this peer
        ceiling = peak.peak(precision) * 1e9 / (flops * peer.rate)
        lines.append(
            f"| {label} | >= {required}x | {ratio:.2f}x | {'yes' if ratio >= required else 'no'} | {ceiling:.2f}x |"
        )
    for precision in ("fp32", "bf16"):
        row = _find(rows, "hf_beit", precision, 8)
        if row is not None and peak.peak(precision):
            fraction = row.rate * flops / (peak.peak(precision) * 1e9)
            met = "yes" if fraction >= 0.8 else "no"
            lines.append(
                f"| {precision} batch 8, share of the {precision} GEMM peak | >= 80% | {fraction:.0%} | {met} | |"
            )
    for precision, required in (("fp32", 1e-4), ("bf16", None), ("int8", None)):
        row = _find(rows, "hf_beit", precision, 8)
        if row is None:
            continue
        if required is not None:
            met = "yes" if row.max_diff <= required else "no"
            lines.append(f"| {precision} logits vs plain path | <= {required:g} | {row.max_diff:.1e} | {met} | |")
        else:
            goal = 0.99 if precision == "bf16" else 0.98
            met = "yes" if row.agreement >= goal else "no"
            lines.append(f"| {precision} top-1 agreement with fp32 | >= {goal:.0%} | {row.agreement:.1%} | {met} | |")
    return lines + [""]


def _preprocessing_targets(preprocessing) -> list[str]:
    """Preprocessing >= 2x transformers' BeitImageProcessor with outputs within 1e-3, per setting and mode."""
    if not preprocessing:
        return []
    lines = ["| target | required | measured | met |", "|---|---|---|---|"]
    for row in preprocessing:
        if row.implementation != "hf_beit BeitImageProcessor":
            continue
        met = row.vs_transformers >= 2.0 and row.max_abs_diff <= 1e-3
        lines.append(
            f"| preprocessing {row.setting} ({row.mode}) vs transformers | >= 2x, diff <= 1e-3 "
            f"| {row.vs_transformers:.2f}x, {row.max_abs_diff:.1e} | {'yes' if met else 'no'} |"
        )
    return lines + [""]


def peak_table(peak: GemmPeak) -> list[str]:
    """The run's best GEMM rate per kernel, the shape it was seen at, and fp32 oneDNN's headroom over MKL."""
    lines = [
        "### Peak GEMM rate (BEiT-base batch-8 shapes, best seen during the run)",
        "",
        "| kernel | GFLOP/s | at (M, K, N) |",
        "|---|---|---|",
    ]
    for name, rate in peak.best.items():
        lines.append(f"| {name} | {rate:.0f} | {peak.best_shape.get(name, '?')} |")
    mkl, onednn = peak.best.get("fp32 F.linear (MKL)"), peak.best.get("fp32 oneDNN packed")
    if mkl and onednn:
        lines += [
            "",
            (
                f"fp32 GEMM headroom over PyTorch's default (MKL) path on this CPU: {onednn / mkl:.2f}x "
                "-- roughly the most"
            ),
            "an fp32 implementation can gain over MKL-based peers once their other overheads are gone.",
        ]
    return lines + [""]


def onednn_version() -> str:
    match = re.search(r"MKL-DNN v([\d.]+)", torch.__config__.show())
    return match.group(1) if match else "?"


def write_report(path: str, rows: list[Row], peak: GemmPeak, environment: dict, config, preprocessing=None) -> str:
    """Render the markdown report, write it atomically to ``path`` and return it.

    ``preprocessing``: rows of ``bench_preprocessing.measure`` (or None).
    """
    flops = forward_flops(config, 1)
    lines = ["# BEiT-base/16 224 on this CPU: hf_beit vs transformers vs timm", ""]
    lines += [f"- {key}: {value}" for key, value in environment.items()]
    lines += ["", *peak_table(peak), *_targets(rows, peak, flops), *_preprocessing_targets(preprocessing)]
    for batch in sorted({row.batch for row in rows if not row.training}, reverse=True):
        lines += _forward_table(rows, batch, peak, flops)
    lines += _training_table(rows)
    if preprocessing:
        lines += [
            "### Image preprocessing (real photographs, median of interleaved repetitions)",
            "",
            *bench_preprocessing.format_table(preprocessing),
            "",
        ]
    lines += [
        "Notes: % of peak GEMM = best img/s x GFLOP per image / fastest GEMM rate of that precision seen in this run.",
        "Agreement and max abs diff compare logits with hf_beit's plain fp32 path on the same photo views (count in",
        "brackets). peak MiB = resident memory above the resting process during one batch-8 call; packed MiB = memory",
        "kept by packed weights (hf_beit). Random weights give flat logits, so top-1 agreement is a harsh test.",
        "page faults / call = median minor page faults during a timed call: memory the allocator had returned to the",
        (
            "system and the kernel must map and zero again (glibc malloc trims large freed blocks; "
            "LD_PRELOAD of jemalloc or"
        ),
        "MALLOC_TRIM_THRESHOLD_ changes this for every implementation).",
        "",
    ]
    report = "\n".join(lines)
    atomic_write_text(path, report)
    return report
