"""What bench_model.py times: one ``Entry`` per (implementation, precision), all on the same random weights."""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from _peers import build_hf_beit, hf_beit_variant, to_timm, to_transformers
from torch import nn

from hf_beit.acceleration import bf16_available, clear_packed_weights, int8_engine, optimize_for_inference

PLAIN = "hf_beit plain"
TRANSFORMERS = "transformers sdpa"
TIMM = "timm"


@dataclass
class Entry:
    """One way to run the classifier: ``logits(pixels)`` under its precision context."""

    name: str  # implementation, without the precision
    precision: str  # "fp32", "bf16", "int8"
    model: nn.Module
    call: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    autocast: bool = False
    ours: bool = False

    @property
    def label(self) -> str:
        return f"{self.name} ({self.precision})"

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        context = torch.autocast("cpu", dtype=torch.bfloat16) if self.autocast else contextlib.nullcontext()
        with torch.inference_mode(), context:
            return self.call(self.model, pixels).float()

    def reset(self) -> None:
        """Drop packed weights so the next call repacks (for memory accounting)."""
        if self.ours:
            clear_packed_weights(self.model)


def _hf_logits(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    return model(pixel_values=pixels).logits


def _timm_logits(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    return model(pixels)


def _dynamic_int8(model: nn.Module) -> nn.Module:
    """PyTorch's stock dynamic quantisation of the nn.Linear layers (what a peer user would do).

    timm's attention reads ``qkv.weight`` directly (to add its q/v biases), so its qkv GEMM stays fp32.
    """
    names = {
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and not name.endswith("attn.qkv")
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), names, dtype=torch.qint8)


def _ours(source: nn.Module, name: str, precision: str, mode: str, autocast: bool = False) -> Entry:
    model = optimize_for_inference(hf_beit_variant(source), mode)
    return Entry(name, precision, model, _hf_logits, autocast=autocast, ours=True)


def build_entries(quick: bool, seed: int = 0) -> tuple[nn.Module, list[Entry]]:
    """The source hf_beit model and every entry to benchmark (fp32 always; bf16/int8 where the CPU supports them)."""
    source = build_hf_beit(seed)
    stock_sdpa, stock_eager, timm_model = (
        to_transformers(source, "sdpa"),
        to_transformers(source, "eager"),
        to_timm(source),
    )
    entries = [
        _ours(source, PLAIN, "fp32", "none"),
        _ours(source, "hf_beit", "fp32", "fp32"),
        Entry(TRANSFORMERS, "fp32", stock_sdpa, _hf_logits),
        Entry("transformers eager", "fp32", stock_eager, _hf_logits),
        Entry(TIMM, "fp32", timm_model, _timm_logits),
    ]
    if bf16_available():
        entries += [
            _ours(source, "hf_beit", "bf16", "bf16"),
            Entry(TRANSFORMERS, "bf16", stock_sdpa, _hf_logits, autocast=True),
            Entry(TIMM, "bf16", timm_model, _timm_logits, autocast=True),
        ]
        if not quick:
            entries.insert(-2, _ours(source, "hf_beit fp32 model + autocast", "bf16", "fp32", autocast=True))
    if int8_engine() is not None:
        entries += [
            _ours(source, "hf_beit", "int8", "int8"),
            Entry(TRANSFORMERS, "int8", _dynamic_int8(stock_sdpa), _hf_logits),
            Entry(TIMM, "int8", _dynamic_int8(timm_model), _timm_logits),
        ]
    return source, entries


def training_models(source: nn.Module) -> dict[str, tuple[nn.Module, Callable]]:
    """Fresh trainable copies (same weights) of hf_beit, stock transformers (sdpa) and timm."""
    ours = copy.deepcopy(source)
    return {
        "hf_beit": (ours.train(), _hf_logits),
        TRANSFORMERS: (to_transformers(source, "sdpa").train(), _hf_logits),
        TIMM: (to_timm(source).train(), _timm_logits),
    }
