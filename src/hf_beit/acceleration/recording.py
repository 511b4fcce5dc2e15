"""Which kernel each GEMM and attention of a model actually ran: ``with record_kernels(model) as kernels: model(x)``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

_ACTIVE: list[KernelRecord] = []


class KernelRecord:
    """The kernels chosen by hf_beit during the calls made inside :func:`record_kernels`.

    ``kernels`` maps a module path (``"beit.encoder.layer.0.attention.attention.{query,key,value}"``, or an
    attention module followed by ``" softmax"``) to the kernel of its last call; ``counts()`` tallies every call.
    Only the choices hf_beit makes are recorded (its GEMMs and attention); other modules run as plain PyTorch.
    """

    def __init__(self, model: nn.Module) -> None:
        self._names = {id(module): name for name, module in model.named_modules(remove_duplicate=False)}
        self.kernels: dict[str, str] = {}
        self._calls: list[str] = []

    def add(self, path: str, kernel: str) -> None:
        self.kernels[path] = kernel
        self._calls.append(kernel)

    def name_of(self, module: nn.Module | None) -> str:
        return "?" if module is None else self._names.get(id(module), type(module).__name__)

    def counts(self) -> Counter:
        """Number of calls per kernel."""
        return Counter(self._calls)

    def __str__(self) -> str:
        width = max((len(path) for path in self.kernels), default=0)
        rows = [f"{path:<{width}}  {kernel}" for path, kernel in self.kernels.items()]
        return "\n".join(rows) if rows else "(no hf_beit kernel calls recorded)"


@contextmanager
def record_kernels(model: nn.Module) -> Iterator[KernelRecord]:
    """Record the kernel of every hf_beit GEMM and attention call made on ``model`` inside the block."""
    record = KernelRecord(model)
    _ACTIVE.append(record)
    try:
        yield record
    finally:
        _ACTIVE.remove(record)


def kernel_recording_active() -> bool:
    return bool(_ACTIVE) and not torch.compiler.is_compiling()


def record_kernel(modules: Sequence[nn.Module], kernel: str) -> None:
    """Note that ``modules`` (linears sharing an input) ran on ``kernel``."""
    for record in _ACTIVE:
        names = [record.name_of(module) for module in modules]
        prefix, _, _ = names[0].rpartition(".")
        if len(names) > 1 and all(name.rpartition(".")[0] == prefix for name in names):
            leaves = ",".join(name.rpartition(".")[2] for name in names)
            path = f"{prefix}.{{{leaves}}}" if prefix else f"{{{leaves}}}"
        else:
            path = "+".join(names)
        record.add(path, kernel)


def record_attention(owner: nn.Module, kernel: str) -> None:
    """Note that ``owner``'s softmax attention ran on ``kernel``."""
    if kernel_recording_active():
        for record in _ACTIVE:
            record.add(f"{record.name_of(owner)} softmax", kernel)
