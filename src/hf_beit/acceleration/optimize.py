"""Choosing the inference precision of a model's fused GEMMs and dropping their packed weights."""

from __future__ import annotations

from torch import nn

from ._packing import require_precision
from .linear import PRECISIONS, UsesFusedLinears


def optimize_for_inference(model: nn.Module, precision: str = "fp32") -> nn.Module:
    """Select the kernels ``model``'s fused GEMMs use when no gradient is needed; returns ``model`` in eval mode.

    ``precision``:

    * ``"fp32"`` (the default even without calling this): oneDNN AVX-512 GEMMs on weights packed once; outputs
      match the plain path to float rounding (~1e-6). Falls back to ``F.linear`` where oneDNN is missing.
    * ``"bf16"``: bf16 GEMMs and attention, fp32 residual stream, LayerNorm and heads; ~2x the fp32 speed.
    * ``"int8"``: dynamic int8 quantisation (per-channel weights, per-tensor activations).
    * ``"none"``: plain ``F.linear`` everywhere (the reference path, no extra memory).

    The choice is stored as ``inference_precision`` on each module that runs fused GEMMs (visible in
    ``print(model)``); ``record_kernels`` shows what each call actually ran. Parameters, names and ``state_dict``
    are unchanged and training is unaffected: calls that need autograd use ``F.linear``, and linears that are
    wrapped, hooked or replaced (PEFT, accelerate, quantisation tools) are always called as modules. Packed
    weights cost one extra copy of the linear weights; ``clear_packed_weights`` frees them.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    require_precision(precision)
    for module in model.modules():
        if isinstance(module, UsesFusedLinears):
            module.inference_precision = precision
    clear_packed_weights(model)
    return model.eval()


def inference_precision(model: nn.Module) -> str:
    """The precision chosen with ``optimize_for_inference`` (``"fp32"`` when never called)."""
    for module in model.modules():
        if isinstance(module, UsesFusedLinears):
            return module.inference_precision
    return "fp32"


def clear_packed_weights(model: nn.Module) -> None:
    """Free all packed weight copies (they are rebuilt on the next inference call)."""
    for module in model.modules():
        module.__dict__.pop("_packed_weights", None)
