"""Atomic writing of a converted repo: config.json, model.safetensors, preprocessor_config.json, README.md and the
card's example.jpg."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..atomic_io import atomic_output_dir
from .errors import OutputExistsError
from .example_image import write_example_image

WEIGHTS_NAME = "model.safetensors"
PREPROCESSOR_NAME = "preprocessor_config.json"


def check_output_dir(output: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing non-empty directory (or a file) unless ``overwrite``."""
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise OutputExistsError(f"{output} exists and is not a directory.")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise OutputExistsError(f"{output} exists and is not empty; pass --overwrite to replace it.")
    return output


def _materialise(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors needs contiguous tensors that do not share storage (qkv chunks and expanded tables do).
    return {key: tensor.detach().to("cpu").contiguous().clone() for key, tensor in state_dict.items()}


def write_repo(
    output: str | os.PathLike,
    *,
    config,
    state_dict: dict[str, torch.Tensor],
    preprocessor_config: dict,
    readme: str,
    overwrite: bool = False,
    check: Callable[[Path], None] | None = None,
    write_extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write the repo into a temporary directory beside ``output``, run ``check`` on it, then rename into place.

    ``write_extra`` adds files of its own to the staging directory (before ``check``).

    Nothing is left behind on error or interruption; an existing ``output`` is only replaced (with ``overwrite``)
    after the new content is complete and checked.
    """
    output = check_output_dir(output, overwrite).absolute()
    with atomic_output_dir(output, overwrite=overwrite) as staging:  # checked again when renaming into place
        config.save_pretrained(staging)
        save_file(_materialise(state_dict), staging / WEIGHTS_NAME, metadata={"format": "pt"})
        (staging / PREPROCESSOR_NAME).write_text(json.dumps(preprocessor_config, indent=2) + "\n", encoding="utf-8")
        (staging / "README.md").write_text(readme, encoding="utf-8")
        write_example_image(staging)  # the card's snippets use it
        if write_extra is not None:
            write_extra(staging)
        if check is not None:
            check(staging)
    return output
