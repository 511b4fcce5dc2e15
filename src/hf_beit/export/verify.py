"""Compare an exported model with the eager PyTorch model on random inputs of the shapes it was exported for."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import torch

from .shapes import EXAMPLE_BATCH, InputSpec

Outputs = Mapping[str, "torch.Tensor | np.ndarray"]


def check_inputs(spec: InputSpec, seed: int = 0) -> list[torch.Tensor]:
    """Random inputs covering the exported axes: batch 1 and 2 when dynamic; for a dynamic resolution the
    configured size and a rectangle one patch taller."""
    batches = (1, EXAMPLE_BATCH) if spec.batch is None else (spec.batch,)
    if spec.dynamic_resolution:
        height, width = spec.native_size
        sizes = [(height, width), (height + spec.patch_size[0], width)]
    else:
        sizes = [(spec.height, spec.width)]
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, spec.num_channels, *size, generator=generator) for batch in batches for size in sizes]


def max_differences(
    reference: Callable[[torch.Tensor], Outputs],
    exported: Callable[[torch.Tensor], Outputs],
    inputs: Iterable[torch.Tensor],
) -> dict[str, float]:
    """Largest ``|exported - reference|`` of each output over ``inputs`` (both called with one input each)."""
    worst: dict[str, float] = {}
    with torch.no_grad():
        for pixel_values in inputs:
            expected = reference(pixel_values)
            got = exported(pixel_values)
            for name, value in expected.items():
                difference = np.abs(_numpy(got[name]) - _numpy(value)).max(initial=0.0)
                worst[name] = max(worst.get(name, 0.0), float(difference))
    return worst


def _numpy(value: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64).numpy()
    return np.asarray(value, dtype=np.float64)
