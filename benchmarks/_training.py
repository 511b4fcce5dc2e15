"""A fine-tuning step (forward + cross-entropy + backward + AdamW, batch 8) in fp32 or bf16 autocast, eager or
compiled."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import torch
from torch import nn


class TrainingStep:
    """One optimiser step of ``model`` on fixed pixels and labels; ``compiled`` wraps forward+loss in torch.compile."""

    def __init__(self, name: str, model: nn.Module, call: Callable, precision: str, compiled: bool = False,
                 ours: bool = False) -> None:
        self.name = name + (" + torch.compile" if compiled else "")
        self.precision = precision
        self.ours = ours
        self.model = model.train()
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        self.call = call
        self.loss = self._loss
        self.build_seconds = 0.0
        if compiled:
            self.loss = torch.compile(self._loss)

    def _loss(self, pixels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(self.call(self.model, pixels), labels)

    def __call__(self, pixels: torch.Tensor, labels: torch.Tensor) -> None:
        context = torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" else contextlib.nullcontext()
        with context:
            loss = self.loss(pixels, labels)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def warm_up(self, pixels: torch.Tensor, labels: torch.Tensor) -> None:
        """First step (optimizer state; compilation for compiled steps), timed as the build cost."""
        start = time.perf_counter()
        self(pixels, labels)
        self.build_seconds = time.perf_counter() - start
