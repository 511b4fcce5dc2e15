"""``fused_linear``: one GEMM for one or several ``nn.Linear`` sharing an input, on the fastest kernel that is exact.

The kernel is chosen per call, and a fast kernel never changes what a module computes:

* **module call** -- any linear that is not a plain ``nn.Linear`` (a PEFT adapter, a quantised or parametrised
  replacement, forward/backward hooks, an accelerate-style replaced ``forward``, a tensor-subclass weight) is
  called as a module, ``linear(x)``, so wrappers, adapters, hooks and offloading behave exactly as elsewhere;
* **packed** -- plain linears at CPU inference (no autograd, no tracing, no torch function/dispatch mode) run on
  weights packed once for oneDNN (fp32, bf16) or int8, cached on the owning module and rebuilt whenever a weight
  changes (pointer, version counter, dtype);
* **F.linear** -- everything else (training, autograd, ``torch.compile``/export tracing, other devices,
  ``precision="none"``) runs ``F.linear`` on the concatenated parameters: exact gradients, no graph breaks.

The owning module (:class:`UsesFusedLinears`) holds the precision chosen by ``optimize_for_inference`` and
shows it in ``print(model)``; :func:`hf_beit.acceleration.record_kernels` reports the kernel every call ran.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as _module_globals

from ._packing import PackedLinear, _activate, bf16_available, int8_engine, onednn_available, pack
from .recording import kernel_recording_active, record_kernel


def _tracing_tensor_types() -> tuple[type, ...]:
    """The stand-ins ``torch.export``/``torch.compile`` put in place of plain parameters while tracing."""
    try:
        from torch._subclasses.fake_tensor import FakeTensor
        from torch._subclasses.functional_tensor import FunctionalTensor
    except ImportError:  # pragma: no cover - older or newer torch layouts
        return ()
    return (FakeTensor, FunctionalTensor)


PRECISIONS = ("fp32", "bf16", "int8", "none")
_PLAIN_TENSOR_TYPES = (nn.Parameter, torch.Tensor, *_tracing_tensor_types())
_GLOBAL_HOOKS = (
    "_global_forward_hooks",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
)


class PackCache(dict):
    """Per-module store of packed weights; never copied, pickled or saved (rebuilt on demand)."""

    def __deepcopy__(self, memo) -> PackCache:
        return PackCache()

    def __reduce__(self):
        return (PackCache, ())


class UsesFusedLinears:
    """Mixin for modules whose forward applies their ``nn.Linear`` children through :func:`fused_linear`.

    ``inference_precision`` (``"fp32"`` by default; set by ``optimize_for_inference``) selects the packed kernels;
    the packed weights live in ``_packed_weights`` (never in the state dict).
    """

    inference_precision: str = "fp32"

    def extra_repr(self) -> str:
        return f"inference_precision={self.inference_precision!r}"


def fused_linear(
    x: torch.Tensor,
    linears: Sequence[nn.Module] | nn.Module,
    activation: str | None = None,
    owner: nn.Module | None = None,
) -> torch.Tensor:
    """``act(cat([linear(x) for linear in linears], -1))`` for ``linears`` that share the input ``x``.

    ``activation`` is a transformers activation name (``config.hidden_act``); GELU and ReLU are fused into the GEMM
    on the packed paths. ``owner`` (a :class:`UsesFusedLinears` module) gives the precision and keeps the packed
    weights; without one the precision is ``"fp32"`` and the packed weights are kept on the first linear. CPU bf16
    autocast and bf16 inputs select the bf16 kernels.
    """
    linears = (linears,) if isinstance(linears, nn.Module) else tuple(linears)
    if any(getattr(_module_globals, name, None) for name in _GLOBAL_HOOKS):
        not_plain = "global module hooks"
    else:
        not_plain = next((reason for reason in map(_why_not_plain_linear, linears) if reason), None)
    if not_plain is not None:
        _record(linears, f"module call ({not_plain})")
        outputs = [linear(x) for linear in linears]
        return _activate(outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1), activation)
    requested = getattr(owner, "inference_precision", "fp32")
    precision, reason = _packed_precision(x, linears, requested)
    if precision is None:
        _record(linears, f"F.linear ({reason})")
        weight, bias = concatenated_parameters(linears)
        return _activate(F.linear(x, weight, bias), activation)
    packed = _packed_for(owner if owner is not None else linears[0], linears, precision)
    _record(linears, _packed_label(packed, activation))
    return packed.apply(x, activation)


def concatenated_parameters(linears: Sequence[nn.Linear]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stacked ``(sum out, in)`` weight and bias (zeros where a module has none; None if no module has one)."""
    if len(linears) == 1:
        return linears[0].weight, linears[0].bias
    weight = torch.cat([linear.weight for linear in linears])
    if all(linear.bias is None for linear in linears):
        return weight, None
    biases = [
        linear.bias if linear.bias is not None else linear.weight.new_zeros(linear.out_features) for linear in linears
    ]
    return weight, torch.cat(biases)


def _why_not_plain_linear(module: nn.Module) -> str | None:
    """Why ``module`` must be called as a module rather than read as ``weight``/``bias`` (None: a plain Linear)."""
    if type(module) is not nn.Linear:
        return f"{type(module).__module__}.{type(module).__qualname__}"
    if module._forward_hooks or module._forward_pre_hooks or module._backward_hooks or module._backward_pre_hooks:
        return "module hooks"
    attributes = module.__dict__
    if "forward" in attributes:
        return "replaced forward"
    parameters = attributes["_parameters"]  # direct access: Module.__getattr__ is slow on this hot path
    weight, bias = parameters.get("weight"), parameters.get("bias")
    if weight is None or type(weight) not in _PLAIN_TENSOR_TYPES or (
        bias is not None and type(bias) not in _PLAIN_TENSOR_TYPES
    ):
        return f"weight of type {type(weight).__name__}"
    return None


def _packed_precision(x: torch.Tensor, linears: tuple[nn.Linear, ...], requested: str) -> tuple[str | None, str]:
    """The packed precision for this call, or ``(None, why the plain F.linear path runs)``."""
    if requested == "none":
        return None, "precision none"
    if x.device.type != "cpu" or type(x) is not torch.Tensor:
        return None, "not a plain CPU tensor"
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return None, "tracing"
    if torch._C._is_torch_function_mode_enabled() or torch._C._len_torch_dispatch_stack() > 0:
        return None, "torch function/dispatch mode"
    if torch._C._are_functorch_transforms_active():
        return None, "functorch transform"
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for m in linears for p in m.parameters())):
        return None, "autograd"
    if requested == "int8":
        return ("int8", "") if int8_engine() is not None else (None, "no quantised engine")
    if not onednn_available():
        return None, "no oneDNN"
    autocast_bf16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    if requested == "bf16" or autocast_bf16 or x.dtype == torch.bfloat16:
        return ("bf16", "") if bf16_available() else (None, "no native bf16")
    return ("fp32", "") if x.dtype == torch.float32 else (None, f"{x.dtype} input")


def _packed_label(packed: PackedLinear, activation: str | None) -> str:
    kernel = "int8 dynamic-quantised GEMM" if packed.precision == "int8" else f"oneDNN packed {packed.precision} GEMM"
    return f"{kernel} + {activation}" if activation else kernel


def _record(linears: tuple[nn.Module, ...], kernel: str) -> None:
    if kernel_recording_active():
        record_kernel(linears, kernel)


def _version_key(tensors: list[torch.Tensor | None], precision: str) -> tuple:
    key = [precision]
    for tensor in tensors:
        if tensor is None:
            key.append(None)
            continue
        try:
            version = tensor._version
        except RuntimeError:  # inference tensors have no version counter
            version = -1
        key.append((tensor.data_ptr(), version, tensor.dtype, tuple(tensor.shape)))
    return tuple(key)


def _packed_for(holder: nn.Module, linears: tuple[nn.Linear, ...], precision: str) -> PackedLinear:
    cache = holder.__dict__.get("_packed_weights")
    if cache is None:
        cache = holder.__dict__["_packed_weights"] = PackCache()
    slot = tuple(id(linear) for linear in linears)
    key = _version_key([t for m in linears for t in (m.weight, m.bias)], precision)
    entry = cache.get(slot)
    if entry is None or entry[0] != key:
        with torch.no_grad():
            weight, bias = concatenated_parameters(linears)
            entry = (key, pack(weight, bias, precision))
        cache[slot] = entry
    return entry[1]
