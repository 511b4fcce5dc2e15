"""Tables of bench_engines.py: every contender per precision and batch, the summary row by row, the targets."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from _measure import GemmPeak, Timings

# (precision, batch) -> (required ratio of hf_beit's path to the best contender, required agreement or None)
TARGETS = {
    ("fp32", 8): (1.0, None),
    ("fp32", 1): (1.1, None),
    ("bf16", 8): (1.1, 0.99),
    ("bf16", 1): (1.1, 0.99),
    ("int8", 8): (1.2, 0.99),
    ("int8", 1): (1.2, 0.99),
}


@dataclass
class Result:
    """Timings and top-1 agreement (with hf_beit's plain fp32 path) of one contender at one batch size."""

    name: str
    precision: str
    batch: int
    ours: bool
    timings: Timings
    agreement: float
    max_diff: float
    build_seconds: float

    @property
    def rate(self) -> float:
        return self.batch / self.timings.best

    @property
    def median_rate(self) -> float:
        return self.batch / self.timings.median


def result(contender, batch: int, timings: Timings, logits: torch.Tensor, reference: torch.Tensor) -> Result:
    agreement = (logits.argmax(-1) == reference.argmax(-1)).float().mean().item()
    max_diff = (logits - reference).abs().max().item()
    return Result(contender.name, contender.precision, batch, contender.ours, timings, agreement, max_diff,
                  contender.build_seconds)


def share(rate: float, precision: str, peak: GemmPeak, flops: float) -> float:
    """Fraction of this run's fastest GEMM rate of ``precision`` that ``rate`` images/s represent."""
    return rate * flops / (peak.peak(precision) * 1e9)


@dataclass
class Verdict:
    precision: str
    batch: int
    best: Result | None  # the fastest contender (median)
    ours: Result | None  # hf_beit's fastest path at >= the best contender's agreement
    required: float
    required_agreement: float | None

    @property
    def ratio(self) -> float:
        return self.ours.median_rate / self.best.median_rate if self.ours and self.best else float("nan")

    @property
    def best_call_ratio(self) -> float:
        return self.ours.rate / self.best.rate if self.ours and self.best else float("nan")


def verdicts(results: list[Result]) -> list[Verdict]:
    """Per (precision, batch): the fastest contender and hf_beit's fastest path at >= its agreement."""
    out = []
    for (precision, batch), (required, agreement) in TARGETS.items():
        rows = [r for r in results if r.precision == precision and r.batch == batch]
        peers = sorted((r for r in rows if not r.ours), key=lambda r: r.median_rate, reverse=True)
        if not peers:
            continue
        best = peers[0]
        ours = [r for r in rows if r.ours and r.agreement >= best.agreement]
        out.append(Verdict(precision, batch, best, max(ours, key=lambda r: r.median_rate, default=None), required,
                           agreement))
    return out


def target_lines(results: list[Result]) -> list[str]:
    """Each target: hf_beit's fastest path at >= the required agreement against the fastest contender."""
    lines = ["### Targets", "", "| precision, batch | required | hf_beit path | ratio (median) | agreement | met |",
             "|---|---|---|---|---|---|"]
    for v in verdicts(results):
        floor = max(v.best.agreement, v.required_agreement or 0.0)
        rows = [r for r in results if r.ours and (r.precision, r.batch) == (v.precision, v.batch)]
        ours = max((r for r in rows if r.agreement >= floor), key=lambda r: r.median_rate, default=None)
        required = f">= {v.required}x vs {v.best.name}" + (
            f" at >= {v.required_agreement:.0%} agreement" if v.required_agreement else "")
        if ours is None:
            lines.append(f"| {v.precision} b{v.batch} | {required} | none at that agreement | - | - | no |")
            continue
        ratio = ours.median_rate / v.best.median_rate
        lines.append(f"| {v.precision} b{v.batch} | {required} | {ours.name} | {ratio:.2f}x | {ours.agreement:.1%} "
                     f"| {'yes' if ratio >= v.required else 'no'} |")
    return lines + [""]


def summary_table(results: list[Result], peak: GemmPeak, flops: float) -> list[str]:
    lines = [
        "### Summary: hf_beit's fastest path vs the fastest contender (medians of interleaved rounds)",
        "",
        ("| precision, batch | fastest contender | img/s | agreement | hf_beit path | img/s | agreement "
         "| ratio (median) | ratio (best call) | share of GEMM peak (ours / contender) | required | met |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in verdicts(results):
        required = ">= 1.0x at >= its agreement"
        if v.ours is None:
            lines.append(f"| {v.precision} b{v.batch} | {v.best.name} | {v.best.median_rate:.2f} | "
                         f"{v.best.agreement:.1%} | none at that agreement | - | - | - | - | - | {required} | no |")
            continue
        lines.append(
            f"| {v.precision} b{v.batch} | {v.best.name} | {v.best.median_rate:.2f} | {v.best.agreement:.1%} "
            f"| {v.ours.name} | {v.ours.median_rate:.2f} | {v.ours.agreement:.1%} | {v.ratio:.2f}x "
            f"| {v.best_call_ratio:.2f}x | {share(v.ours.median_rate, v.precision, peak, flops):.0%} / "
            f"{share(v.best.median_rate, v.precision, peak, flops):.0%} | {required} "
            f"| {'yes' if v.ratio >= 1.0 else 'no'} |"
        )
    return lines + [""]


def detail_table(results: list[Result], peak: GemmPeak, flops: float) -> list[str]:
    lines = [
        "### All contenders",
        "",
        ("| precision | batch | implementation | img/s median | img/s best | share of GEMM peak (median) "
         "| top-1 agreement | max abs diff | build s |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r.precision, -r.batch, -r.median_rate)):
        lines.append(
            f"| {r.precision} | {r.batch} | {'**' + r.name + '**' if r.ours else r.name} | {r.median_rate:.2f} "
            f"| {r.rate:.2f} | {share(r.median_rate, r.precision, peak, flops):.0%} | {r.agreement:.1%} "
            f"| {r.max_diff:.1e} | {r.build_seconds:.0f} |"
        )
    return lines + [""]

