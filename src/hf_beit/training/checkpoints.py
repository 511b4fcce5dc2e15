"""Finding resumable Trainer checkpoints and writing the final model directory atomically.

A checkpoint is resumable when the files the Trainer reads back are complete: ``trainer_state.json`` parses and
has a ``global_step`` (the Trainer writes it last, so it also marks a finished save), the weights' safetensors header
parses and the file is as long as the header says, and the torch archives (optimizer, scheduler, RNG state) have an
intact zip directory. ``--resume`` takes the newest resumable checkpoint and says why newer ones were skipped.
"""

from __future__ import annotations

import json
import logging
import re
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

from ..atomic_io import atomic_output_dir

logger = logging.getLogger(__name__)

_CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
_COMPLETE_MARKER = "trainer_state.json"
_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
_ARCHIVES = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "pytorch_model.bin")
_MAX_HEADER = 100 * 1024 * 1024


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is damaged (header unreadable, or shorter than its header says), else ``None``."""
    try:
        with path.open("rb") as file:
            (length,) = struct.unpack("<Q", file.read(8))
            if length > _MAX_HEADER:
                return f"{path.name} has a corrupt header"
            header = json.loads(file.read(length))
        end = max((entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"), default=0)
    except (OSError, struct.error, ValueError, KeyError, TypeError, IndexError) as error:
        return f"{path.name} is unreadable ({type(error).__name__})"
    if path.stat().st_size < 8 + length + end:
        return f"{path.name} is truncated"
    return None


def checkpoint_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be resumed from, or ``None`` if it can."""
    path = Path(path)
    state_file = path / _COMPLETE_MARKER
    if not state_file.is_file():
        return f"no {_COMPLETE_MARKER} (interrupted while saving)"
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return f"{_COMPLETE_MARKER} is unreadable ({type(error).__name__})"
    if not isinstance(state, dict) or not isinstance(state.get("global_step"), int):
        return f"{_COMPLETE_MARKER} has no global_step"
    weights = [path / name for name in _WEIGHTS if (path / name).is_file()]
    if not weights:
        return "no model weights"
    if weights[0].suffix == ".safetensors" and (problem := _safetensors_problem(weights[0])):
        return problem
    for name in _ARCHIVES:
        archive = path / name
        if archive.is_file() and not zipfile.is_zipfile(archive):
            return f"{name} is truncated or corrupt"
    return None


def latest_checkpoint(output_dir: str | Path) -> str | None:
    """The newest resumable ``checkpoint-N`` in ``output_dir``; newer damaged or incomplete ones are skipped with a
    warning saying why."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    found = []
    for path in output_dir.iterdir():
        match = _CHECKPOINT_PATTERN.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    for _, path in sorted(found, reverse=True):
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        logger.warning("Ignoring checkpoint %s: %s.", path, problem)
    return None


def resume_path(resume: str | bool | None, output_dir: str | Path) -> str | None:
    """Checkpoint to resume from: ``None``/``False`` -> none, ``True``/``"latest"`` -> newest resumable one."""
    if resume is None or resume is False:
        return None
    if resume is True or resume == "latest":
        path = latest_checkpoint(output_dir)
        if path is None:
            raise FileNotFoundError(f"--resume: no complete checkpoint in {output_dir}; start without --resume.")
        return path
    problem = checkpoint_problem(resume)
    if problem is not None:
        raise FileNotFoundError(f"--resume {resume}: not a complete Trainer checkpoint ({problem}).")
    return str(resume)


def save_final_model(model, processor, target: str | Path, metrics: dict,
                     extras: Callable[[Path], None] | None = None) -> None:
    """Write model, image processor, ``eval_results.json`` (and what ``extras(folder)`` adds, e.g. the model card)
    to a temporary directory beside ``target``, then rename it into place (replacing an earlier result only once
    the new one is complete)."""
    with atomic_output_dir(target, overwrite=True) as temporary:
        model.save_pretrained(temporary)
        processor.save_pretrained(temporary)
        (temporary / "eval_results.json").write_text(json.dumps(metrics, indent=2))
        if extras is not None:
            extras(temporary)
