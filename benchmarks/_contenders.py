"""What bench_engines.py times: hf_beit's paths and the engines a user of stock transformers or timm would reach for.

Every contender is a ``Contender``: ``logits(pixels) -> tensor`` plus the seconds it took to build (export,
conversion, quantisation, compilation). The peers' engines get their best known settings -- the same threads,
OpenVINO's latency hint with a static shape per batch size, ONNX Runtime's full graph optimisation (and its
transformer fusions as a second variant), NNCF with its transformer preset -- so what separates hf_beit's path
from them is what it knows about its own graph.
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from _entries import _dynamic_int8
from torch import nn

from hf_beit.acceleration import optimize_for_inference
from hf_beit.export import compile_for_engine

OURS = "hf_beit"


@dataclass
class Contender:
    """One way to get logits for a batch of pixels, at one precision."""

    name: str
    precision: str
    run: Callable[[torch.Tensor], torch.Tensor]
    ours: bool = False
    build_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.precision})"

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.run(pixels)


def timed_build(name: str, precision: str, build: Callable[[], Callable], ours: bool = False) -> Contender:
    """Build a contender, recording how long it took (export + conversion + compilation)."""
    start = time.perf_counter()
    run = build()
    contender = Contender(name, precision, run, ours=ours, build_seconds=time.perf_counter() - start)
    contender.timings = dict(getattr(run, "timings", {}) or {})
    return contender


class LogitsOnly(nn.Module):
    """``pixel_values -> logits`` of a transformers / hf_beit classifier (what exporters and compilers trace)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def eager(model: nn.Module, autocast: bool = False, call=None) -> Callable[[torch.Tensor], torch.Tensor]:
    """An eager PyTorch model under ``inference_mode`` (and bf16 autocast)."""
    if call is None:  # not `call or ...`: a compiled module's truthiness asks its model for len()
        def call(pixels: torch.Tensor) -> torch.Tensor:
            return model(pixel_values=pixels).logits

    def run(pixels: torch.Tensor) -> torch.Tensor:
        context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with torch.inference_mode(), context:
            return call(pixels).float()

    return run


def ours_eager(source: nn.Module, variant: Callable[[nn.Module], nn.Module], precision: str) -> Contender:
    return timed_build(f"{OURS} eager", precision, lambda: eager(optimize_for_inference(variant(source), precision)),
                       ours=True)


def ours_engine(source: nn.Module, engine: str, precision: str, calibration: torch.Tensor | None,
                fp32_head: bool = True) -> Contender:
    """hf_beit's deployment path: ``compile_for_engine`` (export with graph knowledge, then the engine)."""
    def build():
        compiled = compile_for_engine(source, engine, precision, calibration=calibration, fp32_head=fp32_head)
        for batch in (8, 1):  # as the peers: compiled for both batch sizes while building
            compiled.backend.compile(batch)
        def run(pixels):
            return torch.from_numpy(compiled.run(pixels)[0])
        run.timings = {**compiled.timings, **compiled.backend.timings}
        return run

    label = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime", "inductor": "inductor"}[engine]
    head = "" if fp32_head or precision == "fp32" else f", {precision} head"
    return timed_build(f"{OURS} {label}{head}", precision, build, ours=True)


def openvino_peer(model: nn.Module, name: str, precision: str, calibration: torch.Tensor | None = None) -> Contender:
    """``openvino.convert_model`` of a stock PyTorch model; int8: NNCF (transformer preset) on ``calibration``."""
    def build():
        import openvino as ov

        from hf_beit.export.engine_openvino import OpenVinoBackend

        with torch.no_grad():
            converted = ov.convert_model(LogitsOnly(model) if _is_hf(model) else model,
                                         example_input=torch.zeros(2, 3, 224, 224))
        if precision == "int8":
            import nncf

            items = [calibration[i : i + 1].numpy() for i in range(len(calibration))]
            converted = nncf.quantize(converted, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER,
                                      subset_size=len(items))
        backend = OpenVinoBackend(converted, precision, torch.get_num_threads())
        backend.compile(8)
        backend.compile(1)
        return lambda pixels: torch.from_numpy(backend.run(pixels.numpy())[0])

    return timed_build(f"OpenVINO ({name})", precision, build)


def onnxruntime_peer(model: nn.Module, name: str, precision: str, fusions: bool, folder: Path) -> Contender:
    """torch.onnx (TorchScript exporter, dynamic batch) of a stock model in ONNX Runtime with ``ORT_ENABLE_ALL``.

    ``fusions``: first ONNX Runtime's transformer optimizer (``model_type="vit"``: LayerNorm, GELU, attention
    where it matches). int8: ONNX Runtime's dynamic quantisation (per-channel int8 MatMul weights).
    """
    def build():
        import onnxruntime as ort

        path = folder / f"{name.replace(' ', '_')}_{precision}_{int(fusions)}.onnx"
        # a copy: the TorchScript exporter changes transformers' model in place (its later logits differed by 0.1)
        exported = copy.deepcopy(model)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(LogitsOnly(exported) if _is_hf(exported) else exported, (torch.zeros(2, 3, 224, 224),),
                              str(path), dynamo=False, input_names=["pixel_values"], output_names=["logits"],
                              dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17)
        if fusions:
            from onnxruntime.transformers import optimizer

            optimized = optimizer.optimize_model(str(path), model_type="vit", num_heads=12, hidden_size=768)
            path = path.with_suffix(".fused.onnx")
            optimized.save_model_to_file(str(path))
        if precision == "int8":
            from hf_beit.export.engine_onnxruntime import quantize_dynamic_int8

            path = quantize_dynamic_int8(path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda pixels: torch.from_numpy(session.run(None, {"pixel_values": pixels.numpy()})[0])

    label = "ONNX Runtime + transformer fusions" if fusions else "ONNX Runtime"
    return timed_build(f"{label} ({name})", precision, build)


def compiled_peer(model: nn.Module, name: str, precision: str, mode: str | None, freezing: bool) -> Contender:
    """``torch.compile`` (inductor) of an eager model; compiled at batch 8 and 1 while building."""
    def build():
        import torch._inductor.config as inductor_config

        module = LogitsOnly(model) if _is_hf(model) else model
        compiled = torch.compile(module, mode=mode, dynamic=False)
        run = eager(compiled, autocast=precision == "bf16", call=compiled)
        with inductor_config.patch(freezing=freezing):
            for batch in (8, 1):
                run(torch.zeros(batch, 3, 224, 224))
        return lambda pixels, run=run: _with_freezing(freezing, run, pixels)

    label = "torch.compile" + (f" {mode}" if mode else "") + (" + freezing" if freezing else "")
    return timed_build(f"{label} ({name})", precision, build)


def torch_dynamic_int8(model: nn.Module, name: str, call) -> Contender:
    return timed_build(f"torch dynamic int8 ({name})", "int8", lambda: eager(_dynamic_int8(model), call=call))


def _with_freezing(freezing: bool, run, pixels):
    import torch._inductor.config as inductor_config

    with inductor_config.patch(freezing=freezing):
        return run(pixels)


def _is_hf(model: nn.Module) -> bool:
    return hasattr(model, "config") and hasattr(model.config, "num_labels")
