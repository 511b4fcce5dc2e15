"""Run an exported ONNX file with onnxruntime, checking the input against what the file was exported for."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ._optional import require
from .onnx_export import METADATA_KEY

_AXES = ("batch", "channels", "height", "width")


class OnnxRunner:
    """An onnxruntime session for a file written by :func:`~hf_beit.export.export_onnx`.

    ``runner(pixel_values)`` takes a ``(batch, channels, height, width)`` array or tensor and returns
    ``{output name: numpy array}``. A wrong shape raises ``ValueError`` saying what the file accepts and how to
    export another one, instead of onnxruntime's shape error. Files from other exporters work too (checked
    against the graph's input shape only).
    """

    def __init__(self, path: str | os.PathLike, providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        ort = require("onnxruntime", "Running an ONNX file")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"No ONNX file at {str(self.path)!r}.")
        self.session = ort.InferenceSession(str(self.path), providers=list(providers))
        model_input = self.session.get_inputs()[0]
        self.input_name: str = model_input.name
        self.input_shape: tuple[int | str | None, ...] = tuple(model_input.shape)
        self.output_names: tuple[str, ...] = tuple(output.name for output in self.session.get_outputs())
        raw = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        self.metadata: dict = json.loads(raw) if raw else {}

    def __call__(self, pixel_values: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        array = _as_float32(pixel_values)
        self.check_input(array.shape)
        return dict(zip(self.output_names, self.session.run(list(self.output_names), {self.input_name: array})))

    def check_input(self, shape: Sequence[int]) -> None:
        """Raise ``ValueError`` unless an input of ``shape`` fits the exported graph."""
        shape = tuple(shape)
        if len(shape) != len(self.input_shape):
            raise ValueError(
                f"{self.path.name} takes {self._expected()} pixel_values; got an array of shape {shape}."
            )
        for axis, (size, expected) in enumerate(zip(shape, self.input_shape)):
            name = _AXES[axis] if axis < len(_AXES) else f"axis {axis}"
            if isinstance(expected, int) and size != expected:
                raise ValueError(
                    f"{self.path.name} was exported for {name} {expected}; got {size} in an input of shape {shape}."
                    f"{self._advice(name)}"
                )
            self._check_range(name, size, shape)

    def _check_range(self, name: str, size: int, shape: tuple) -> None:
        low, high = self.metadata.get("dynamic_ranges", {}).get(name, (None, None))
        step = self._multiple(name)
        if (low is not None and size < low) or (high is not None and size > high) or size % step:
            limits = f">= {low}" + (f" and <= {high}" if high is not None else "")
            multiple = f", a multiple of the {step}-pixel patch" if step > 1 else ""
            raise ValueError(
                f"{self.path.name} accepts a {name} {limits}{multiple}; got {size} in an input of shape {shape}."
            )

    def _multiple(self, name: str) -> int:
        patch = self.metadata.get("patch_size")
        if patch and name in ("height", "width") and self.metadata.get(name, 0) is None:
            return int(patch[0] if name == "height" else patch[1])
        return 1

    def _expected(self) -> str:
        return "(" + ", ".join(str(size) for size in self.input_shape) + ")"

    @staticmethod
    def _advice(name: str) -> str:
        if name in ("height", "width"):
            return (" The resolution was fixed at export time: resize the images, or export again with --image-size "
                    "H W (image_size=(H, W)), or with --image-size dynamic where the model allows it.")
        if name == "batch":
            return " The batch size was fixed at export time: split the batch, or export again with --batch dynamic."
        return ""


def _as_float32(pixel_values: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(pixel_values, torch.Tensor):
        pixel_values = pixel_values.detach().to("cpu", torch.float32).numpy()
    return np.ascontiguousarray(pixel_values, dtype=np.float32)
